"""The ns-initial task (ANIE's protocol): the authors' frame times and split, its data from FNO .mat files and
from generated files, the reference predictors against numpy, and vit / anie training on it."""

import json

import numpy as np
import pytest
import scipy.io
import torch
from typer.testing import CliRunner

from fixpt.cli import app
from fixpt.data.navier_stokes import NavierStokesConfig, forcing, gaussian_random_field, generate, load_dataset, solve_vorticity
from fixpt.data.ns_initial import NSInitialDataConfig, frame_times, load_ns_initial, split_sizes
from fixpt.errors import FixptError
from fixpt.tasks import get_task
from fixpt.tasks.base import Metric
from test_fno_mat import write_v73

runner = CliRunner()


def test_frame_times_are_the_authors():
    """Their notebook: np.linspace(0, 50, num=10, dtype=np.int64) over a prepended to u (printed there)."""
    assert frame_times(50, 10) == [0, 5, 11, 16, 22, 27, 33, 38, 44, 50]
    assert frame_times(6, 4) == [0, 2, 4, 6]


@pytest.mark.parametrize("n, sizes", [(5000, (3200, 800, 1000)), (1600, (1024, 256, 320)), (10, (7, 1, 2)), (20000, (15200, 3800, 1000))])
def test_split_sizes(n, sizes):
    assert split_sizes(n) == sizes and sum(sizes) == n


@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_fno_file_gives_t0_in_and_the_trajectory_out(tmp_path, fmt):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((10, 4, 4)).astype(np.float32)
    u = rng.standard_normal((10, 4, 4, 50)).astype(np.float32)
    path = tmp_path / "ns.mat"
    if fmt == "v5":
        scipy.io.savemat(path, {"a": a, "u": u})
    else:
        write_v73(path, a=a, u=u)
    data = load_ns_initial(NSInitialDataConfig(data_file=str(path)))
    full = np.concatenate([a[..., None], u], -1)  # the authors' Data_u: a prepended as t = 0, 51 frames
    expected = np.moveaxis(full[..., [0, 5, 11, 16, 22, 27, 33, 38, 44, 50]], -1, 1)
    assert torch.equal(data.x, torch.from_numpy(a[:, None])) and torch.equal(data.y, torch.from_numpy(expected))
    assert data.train_mask.sum() == 7 and data.val_mask[7] and data.test_mask[8:].all()  # file order: train, val, test


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    cfg = NavierStokesConfig(n_samples=10, resolution=8, fine=16, t_final=6, dt=1e-2)
    return cfg, generate(cfg, tmp_path_factory.mktemp("ns"))


def test_generated_file_holds_t0_and_feeds_the_task(generated):
    cfg, path = generated
    raw = load_dataset(path, cfg)
    w0 = gaussian_random_field(10, 16, generator=torch.Generator().manual_seed(0))  # the generator's own draw
    assert torch.equal(raw["initial"], w0[..., ::2, ::2])
    assert torch.allclose(raw["vorticity"][:, 0], solve_vorticity(w0, forcing(16), 1e-3, 1.0, 1e-2)[:, 0, ::2, ::2], atol=1e-6)
    data = load_ns_initial(NSInitialDataConfig(data_file=str(path), horizon=6, frames=4))
    assert data.x.shape == (10, 1, 8, 8) and data.y.shape == (10, 4, 8, 8)
    assert torch.equal(data.y[:, 0], raw["initial"]) and torch.equal(data.y[:, 1:], raw["vorticity"][:, [1, 3, 5]])
    with pytest.raises(FixptError, match=r"holds t = 1..6; horizon=50 needs --t-final 50"):
        load_ns_initial(NSInitialDataConfig(data_file=str(path)))


def test_older_files_without_t0(generated, tmp_path):
    cfg, path = generated
    raw = load_dataset(path, cfg)
    old = {k: v for k, v in raw.items() if k != "initial"} | {"version": 1}
    copy = tmp_path / path.parent.name / path.name
    copy.parent.mkdir()
    torch.save(old, copy)
    with pytest.raises(FixptError, match="no t = 0 fields .* regenerate"):
        load_ns_initial(NSInitialDataConfig(data_file=str(copy), horizon=6, frames=4))
    assert generate(cfg, tmp_path) == copy and "initial" not in load_dataset(copy)  # navier-stokes reuses it as it is
    assert generate(cfg, tmp_path, need_initial=True) == copy  # ns-initial regenerates it, now with t = 0
    assert torch.equal(load_dataset(copy, cfg)["initial"], raw["initial"])


def test_reference_predictors_against_numpy(generated):
    """zero, per-pixel training mean and persistence (the t = 0 field for every frame) by the task's MSE."""
    _, path = generated
    task = get_task("ns-initial")
    data = task.load(NSInitialDataConfig(data_file=str(path), horizon=6, frames=4))
    refs = task.reference_scores(data, Metric("mse", higher_is_better=False))
    x, y = data.x.numpy().astype(np.float64), data.y.numpy().astype(np.float64)
    train, val, test = (m.numpy() for m in (data.train_mask, data.val_mask, data.test_mask))
    mean = y[train].mean(0)
    for split, m in (("val", val), ("test", test)):
        assert refs["zero"][f"{split}_mse"] == pytest.approx((y[m] ** 2).mean(), rel=1e-5)
        assert refs["per-pixel mean"][f"{split}_mse"] == pytest.approx(((y[m] - mean) ** 2).mean(), rel=1e-5)
        assert refs["persistence"][f"{split}_mse"] == pytest.approx(((y[m] - x[m]) ** 2).mean(), rel=1e-5)
    assert refs["per-pixel mean"]["test_mse"] < refs["zero"]["test_mse"]  # a real flow: the mean is a better guess
    # navier-stokes: persistence is the last input frame
    nst = get_task("navier-stokes")
    d2 = nst.load(nst.data_config(data_file=str(path), in_frames=3, out_frames=3))
    r2 = nst.reference_scores(d2, Metric("mse", higher_is_better=False))
    last = d2.x[:, -1:].numpy().astype(np.float64)
    assert r2["persistence"]["test_mse"] == pytest.approx(((d2.y.numpy()[d2.test_mask.numpy()] - last[d2.test_mask.numpy()]) ** 2).mean(), rel=1e-5)
    assert get_task("masked-pixels").references == ()


@pytest.mark.parametrize("model, extra", [("vit", []), ("anie", ["--tubelet", "1"]), ("anie", ["--tubelet", "2"]),
                                          ("vit", ["--variant", "vit-3d", "--tubelet", "2"]),
                                          ("vit", ["--head", "pooled", "--iterate-on", "pixels", "--n-iter", "2"])])
def test_models_train_on_ns_initial(generated, tmp_path, model, extra):
    _, path = generated
    res = runner.invoke(app, ["train", model, "--task", "ns-initial", "--data-file", str(path), "--horizon", "6", "--frames", "4",
                              "--epochs", "1", "--batch-size", "4", "--out", str(tmp_path / "run"), "--json", *extra])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["task"] == "ns-initial" and metrics["test_mse"] > 0
    assert set(metrics["references"]) == {"zero", "per-pixel mean", "persistence"}
    assert metrics["references"]["zero"]["test_mse"] > 0


def test_bad_options_one_line(generated):
    _, path = generated
    for args, needle in [(["--frames", "8"], "frames=8 is more than the 7 times"),
                         (["--in-frames", "2"], "--in-frames is not an option of task 'ns-initial'")]:
        res = runner.invoke(app, ["train", "vit", "--task", "ns-initial", "--data-file", str(path), "--horizon", "6", *args])
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert res.exit_code == 2 and len(lines) == 1 and needle in lines[0], res.output


def test_report_shows_the_reference_rows(generated, tmp_path):
    """A two-run sweep on ns-initial: the report has one unranked row per reference predictor, its value the
    runs' metrics.json (identical in both runs: it depends on the data only)."""
    _, path = generated
    preset = tmp_path / "p.yaml"
    preset.write_text(f"description: t\nreport: generic\nmodel: vit\nseeds: 1\nbase: {{task: ns-initial, data_file: '{path}', "
                      "horizon: 6, frames: 4, epochs: 1, batch_size: 4, variant: vit-small}\ngrid: {n_iter: [1, 2]}\n")
    res = runner.invoke(app, ["sweep", str(preset), "--out", str(tmp_path / "sw")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", str(tmp_path / "sw"), "--format", "json"])
    assert res.exit_code == 0, res.output
    cells = {c["row"]: c for c in json.loads(res.stdout)["cells"]}
    run_metrics = [json.loads(p.read_text()) for p in (tmp_path / "sw").rglob("metrics.json")]
    assert len(run_metrics) == 2
    for name in ("zero", "per-pixel mean", "persistence"):
        cell = cells[f"reference: {name}"]
        assert cell["n"] == 1 and cell["best"] is False and cell["reference"] is True
        assert cell["mean"] == pytest.approx(run_metrics[0]["references"][name]["test_mse"])
        assert run_metrics[0]["references"][name] == run_metrics[1]["references"][name]
    assert sum(c["best"] for c in cells.values()) == 1 and cells["n_iter=1"]["column"] == cells["reference: zero"]["column"]
    md = runner.invoke(app, ["report", str(tmp_path / "sw")]).stdout
    assert "| reference: per-pixel mean |" in md and "reference rows: predictors that need no training" in md


def test_the_ns_initial_presets_resolve():
    """The Table 2 / Table 4 presets on ns-initial: every run's configs valid; Table 4 has both forms."""
    from fixpt.presets import FOLDER
    from fixpt.sweep import load_preset

    t2 = load_preset(FOLDER / "table2-initial.yaml")
    assert len(t2.runs) == 36 and all(r.configs["task"] == "ns-initial" for r in t2.runs)
    t4 = load_preset(FOLDER / "table4-initial.yaml")
    authors = [r for r in t4.runs if r.configs["model_config"]["residual"]]
    assert len(t4.runs) == 24 and len(authors) == 12
    assert {(r.configs["model_config"]["attention"], r.configs["model_config"]["output"]) for r in authors} == {("galerkin", "image")}
    assert all(r.configs["train"]["patience"] == 100 and r.configs["data"]["data_size"] == "small" for r in t4.runs)
