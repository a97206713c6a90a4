"""The Navier-Stokes generator against closed forms: exact decay of a single mode, zero mean,
shift equivariance, the random field's spectrum, first-order convergence in dt; and its files."""

import math

import pytest
import torch
from typer.testing import CliRunner

from fixpt.cli import app
from fixpt.data.navier_stokes import (NavierStokesConfig, dataset_path, forcing, gaussian_random_field, generate, grf_spectrum,
                                      load_dataset, solve_vorticity)
from fixpt.errors import FixptError

runner = CliRunner()


def grid(s):
    return torch.arange(s, dtype=torch.float64) / s


@pytest.mark.parametrize("k", [(1, 0), (2, 1), (3, -2)])
def test_single_mode_decays_exactly(k):
    """Without forcing, w0 = cos 2pi(k.x) has u.grad(w) = 0, so w(t) = exp(-nu 4 pi^2 |k|^2 t) w0."""
    s, nu = 16, 1e-2
    x = grid(s)
    w0 = torch.cos(2 * math.pi * (k[0] * x[:, None] + k[1] * x[None, :])) + 0.5 * torch.sin(2 * math.pi * (k[0] * x[:, None] + k[1] * x[None, :]))
    w = solve_vorticity(w0[None], None, nu, 2.0, 1e-4)
    for t in (1, 2):
        exact = w0 * math.exp(-nu * 4 * math.pi ** 2 * (k[0] ** 2 + k[1] ** 2) * t)
        assert (w[0, t - 1] - exact).norm() / exact.norm() < 1e-6


def test_mean_stays_zero_and_shifts_commute():
    gen = torch.Generator().manual_seed(0)
    w0 = gaussian_random_field(2, 16, generator=gen, dtype=torch.float64)
    f = forcing(16, dtype=torch.float64)
    w = solve_vorticity(w0, f, 1e-3, 2.0, 1e-3)
    assert w.abs().max() > 0.05  # a real, non-trivial flow
    assert w.mean(dim=(-2, -1)).abs().max() < 1e-12
    shift = (3, 5)
    w_shifted = solve_vorticity(torch.roll(w0, shift, (-2, -1)), torch.roll(f, shift, (-2, -1)), 1e-3, 2.0, 1e-3)
    assert torch.allclose(w_shifted, torch.roll(w, shift, (-2, -1)), atol=1e-12)


def test_first_order_in_time():
    """Advection is explicit Euler, so halving dt halves the error against a fine-step reference."""
    gen = torch.Generator().manual_seed(1)
    w0 = gaussian_random_field(2, 16, generator=gen, dtype=torch.float64)
    f = forcing(16, dtype=torch.float64)
    ref = solve_vorticity(w0, f, 1e-3, 2.0, 1.25e-4)
    errors = [(solve_vorticity(w0, f, 1e-3, 2.0, dt) - ref).norm() / ref.norm() for dt in (4e-3, 2e-3)]
    assert errors[1] < 2e-3
    assert 1.7 < errors[0] / errors[1] < 2.3


def test_random_field_spectrum_matches_its_target():
    """E|w_k|^2 = a_k^2 for every mode but the mean and the self-conjugate Nyquist ones."""
    s, n = 16, 4000
    w = gaussian_random_field(n, s, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    power = (torch.fft.fft2(w, norm="forward").abs() ** 2).mean(0)
    target = grf_spectrum(s) ** 2
    k = torch.fft.fftfreq(s, 1 / s)
    usable = (k[:, None].abs() < s // 2) & (k[None, :].abs() < s // 2) & (target > 0)
    ratio = power[usable] / target[usable]
    assert ratio.mean() == pytest.approx(1.0, abs=0.02)  # 224 modes x 4000 samples
    assert (ratio - 1).abs().max() < 0.12  # each mode: 4000 exponential draws, std 1.6 %
    assert power[0, 0] < 1e-20


def test_files_are_reused_and_never_mistaken(tmp_path):
    cfg = NavierStokesConfig(n_samples=3, resolution=8, fine=16, t_final=2, dt=1e-3)
    path = generate(cfg, tmp_path)
    data = load_dataset(path, cfg)
    assert data["vorticity"].shape == (3, 2, 8, 8) and data["params"]["fine"] == 16
    stamp = path.stat().st_mtime_ns
    assert generate(cfg, tmp_path) == path and path.stat().st_mtime_ns == stamp  # same options: the file is reused
    other = NavierStokesConfig(n_samples=3, resolution=8, fine=16, t_final=2, dt=1e-3, seed=1)
    assert dataset_path(other, tmp_path) != path
    with pytest.raises(FixptError, match="seed differ"):
        load_dataset(path, other)
    # the subsampled file is the fine solution at every other grid point
    w0 = gaussian_random_field(3, 16, generator=torch.Generator().manual_seed(0))
    fine = solve_vorticity(w0, forcing(16), 1e-3, 2.0, 1e-3)
    assert torch.allclose(data["vorticity"], fine[..., ::2, ::2], atol=1e-6)


def test_bad_files_and_options(tmp_path):
    with pytest.raises(FixptError, match="does not exist"):
        load_dataset(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"format": "fixpt-navier-stokes", "params": {}, "vorticity": torch.zeros(3, 8, 8)}, bad)
    with pytest.raises(FixptError, match=r"shape \(3, 8, 8\)"):
        load_dataset(bad)
    bad.write_bytes(b"not a torch file")
    with pytest.raises(FixptError, match="not a readable"):
        load_dataset(bad)
    res = runner.invoke(app, ["data", "navier-stokes", "--resolution", "12", "--fine", "16", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "multiple of resolution" in res.output


def test_cli_generates_then_reuses(tmp_path):
    args = ["data", "navier-stokes", "--n-samples", "2", "--t-final", "1", "--resolution", "8", "--out", str(tmp_path), "--json"]
    import json

    first = json.loads(runner.invoke(app, args).stdout)
    second = json.loads(runner.invoke(app, args).stdout)
    assert first["path"] == second["path"] and not first["reused"] and second["reused"]
    assert first["shape"] == [2, 1, 8, 8]
