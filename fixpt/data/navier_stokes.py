r"""2-D incompressible Navier-Stokes in vorticity form on the unit torus: the recipe of the FNO data
sets (Li et al. 2021) that the paper's transformer experiments use.

.. math::

    \partial_t w + u \cdot \nabla w = \nu \Delta w + f, \qquad
    u = (\partial_y \psi, -\partial_x \psi), \qquad -\Delta \psi = w, \qquad (x, y) \in [0, 1)^2,

with forcing :math:`f(x, y) = 0.1 (\sin 2\pi(x + y) + \cos 2\pi(x + y))` and an initial vorticity
drawn from the Gaussian random field

.. math:: w_0(x) = \mathrm{Re} \sum_k \xi_k\, a_k\, e^{2\pi i k \cdot x}, \qquad
          a_k = \sqrt{2}\, \tau^{\alpha - 1} (4\pi^2 |k|^2 + \tau^2)^{-\alpha/2}, \quad a_0 = 0,

:math:`\xi_k` standard complex normal (real and imaginary parts N(0, 1)), :math:`\alpha = 2.5`,
:math:`\tau = 7`: each Fourier coefficient of :math:`w_0` has
:math:`\mathbb{E} |\hat w_k|^2 = a_k^2` (:func:`grf_spectrum`), and the mean mode is zero.

The solver is pseudo-spectral in space (derivatives and the inverse Laplacian in Fourier space,
the product :math:`u \cdot \nabla w` in physical space, its spectrum truncated by the 2/3 rule:
modes with :math:`|k_x|` or :math:`|k_y| > \tfrac{2}{3} k_{max}` removed) and Crank-Nicolson in
time for the viscous term, explicit for advection and forcing:

.. math:: \hat w^{n+1} = \frac{(1 - \tfrac12 \Delta t\, \nu \lambda_k)\, \hat w^n
          - \Delta t\, \widehat{(u \cdot \nabla w)}{}^n + \Delta t\, \hat f}{1 + \tfrac12 \Delta t\, \nu \lambda_k},
          \qquad \lambda_k = 4\pi^2 |k|^2 .

It runs on the ``fine`` grid and keeps every ``fine / resolution``-th grid point (FNO's
subsampling), recording the vorticity at t = 1, 2, ..., ``t_final`` and the initial field (t = 0).

Throughput on this machine's CPU (one thread, float32, measured for docs/results.md): 32 x 32 with
dt = 1e-3 about 1.8 trajectories a second to t = 50; 64 x 64 solved directly, 0.46; FNO's 256 x 256 with
dt = 1e-4 about 600 s a trajectory (a GPU job).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ..errors import FixptError

VISCOSITIES = (1e-3, 1e-4, 1e-5)
FORMAT = "fixpt-navier-stokes"
# ``paper``: FNO's recipe. ``small``: 300 trajectories solved directly on 32 x 32 with dt = 1e-3, a
# few minutes on 2 CPU cores; against the paper's dt = 1e-4 its frames differ by 2e-4 (relative L2,
# t = 20), against solving on 64 x 64 and subsampling by 7e-4 (measured, README).
SIZES = {
    "paper": {"n_samples": 1200, "resolution": 64, "fine": 256, "dt": 1e-4},
    "small": {"n_samples": 300, "resolution": 32, "fine": 32, "dt": 1e-3},
}


@dataclass
class NavierStokesConfig:
    n_samples: int = field(default=1200, metadata={"min": 1, "help": "number of trajectories"})
    resolution: int = field(default=64, metadata={"min": 4, "help": "grid of the saved vorticity"})
    fine: int = field(default=256, metadata={"min": 4, "help": "grid the equation is solved on (a multiple of resolution)"})
    viscosity: float = field(default=1e-3, metadata={"above": 0, "help": "nu", "choices": VISCOSITIES})
    t_final: int = field(default=20, metadata={"min": 1, "help": "frames recorded at t = 1 .. t_final"})
    dt: float = field(default=1e-4, metadata={"above": 0, "help": "time step"})
    alpha: float = field(default=2.5, metadata={"above": 0, "help": "random field: smoothness exponent"})
    tau: float = field(default=7.0, metadata={"above": 0, "help": "random field: inverse length scale"})
    seed: int = field(default=0, metadata={"min": 0, "help": "seed of the initial fields"})

    def validate(self) -> None:
        if self.n_samples < 1 or self.resolution < 4 or self.t_final < 1 or self.dt <= 0:
            raise FixptError("n_samples >= 1, resolution >= 4, t_final >= 1 and dt > 0 are needed")
        if self.fine % self.resolution:
            raise FixptError(f"fine={self.fine} must be a multiple of resolution={self.resolution} (the grid is subsampled)")
        steps = round(1.0 / self.dt)
        if abs(steps * self.dt - 1.0) > 1e-9:
            raise FixptError(f"dt={self.dt} must divide one time unit (a frame is recorded every time unit)")


def wavenumbers(s: int, device=None, dtype=torch.float64) -> tuple[Tensor, Tensor]:
    """Integer wavenumbers ``(kx, ky)`` of an ``s x s`` grid, full along x (dim -2), halved along y (rfft, dim -1)."""
    kx = torch.fft.fftfreq(s, 1.0 / s, device=device, dtype=dtype)[:, None].expand(s, s // 2 + 1)
    ky = torch.fft.rfftfreq(s, 1.0 / s, device=device, dtype=dtype)[None, :].expand(s, s // 2 + 1)
    return kx, ky


def grf_spectrum(s: int, alpha: float = 2.5, tau: float = 7.0, dtype=torch.float64) -> Tensor:
    """:math:`a_k` on the full ``s x s`` grid of wavenumbers (FFT order), :math:`a_0 = 0`."""
    k = torch.fft.fftfreq(s, 1.0 / s, dtype=dtype)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    a = math.sqrt(2.0) * tau ** (alpha - 1.0) * (4 * math.pi ** 2 * k2 + tau ** 2) ** (-alpha / 2)
    a[0, 0] = 0.0
    return a


def gaussian_random_field(n: int, s: int, alpha: float = 2.5, tau: float = 7.0, *, generator: torch.Generator,
                          dtype=torch.float32, device=None) -> Tensor:
    """``n`` initial vorticities ``(n, s, s)``: :math:`\\mathrm{Re} \\sum_k \\xi_k a_k e^{2\\pi i k\\cdot x}`."""
    a = grf_spectrum(s, alpha, tau).to(device)
    xi = torch.complex(torch.randn(n, s, s, generator=generator, dtype=torch.float64),
                       torch.randn(n, s, s, generator=generator, dtype=torch.float64)).to(device)
    return (torch.fft.ifft2(xi * a, norm="forward").real).to(dtype)  # norm="forward": ifft is the plain sum over k


def forcing(s: int, dtype=torch.float32, device=None) -> Tensor:
    """:math:`0.1 (\\sin 2\\pi(x + y) + \\cos 2\\pi(x + y))` at :math:`x = i / s, y = j / s`."""
    x = torch.arange(s, dtype=torch.float64, device=device) / s
    phase = 2 * math.pi * (x[:, None] + x[None, :])
    return (0.1 * (torch.sin(phase) + torch.cos(phase))).to(dtype)


def solve_vorticity(w0: Tensor, f: Tensor | None, viscosity: float, t_final: float, dt: float, *,
                    record_every: float = 1.0, on_record: Callable[[int], None] | None = None) -> Tensor:
    """Vorticity at t = record_every, 2 record_every, ..., t_final: ``(n, frames, s, s)`` from ``w0 (n, s, s)``.
    ``f`` is the forcing on the same grid (None: no forcing). Runs on ``w0``'s device and dtype."""
    n, s, _ = w0.shape
    kx, ky = wavenumbers(s, w0.device, w0.dtype)
    lam = 4 * math.pi ** 2 * (kx ** 2 + ky ** 2)
    inv_lap = torch.where(lam > 0, 1.0 / torch.where(lam > 0, lam, 1.0), 0.0)
    kmax = s // 2
    dealias = ((kx.abs() <= 2.0 / 3.0 * kmax) & (ky.abs() <= 2.0 / 3.0 * kmax)).to(w0.dtype)
    dx, dy = 2j * math.pi * kx, 2j * math.pi * ky
    implicit = 1.0 + 0.5 * dt * viscosity * lam
    explicit = (1.0 - 0.5 * dt * viscosity * lam) / implicit
    advect = dealias * dt / implicit
    # u = d(psi)/dy, v = -d(psi)/dx with psi_h = w_h / lambda, and the gradient of w, each one Fourier
    # multiplier of w_h; four inverse transforms (one on the four stacked was 2.6x slower on the CPU)
    multipliers = (dy * inv_lap, -dx * inv_lap, dx, dy)
    f_h = torch.fft.rfft2(f.to(w0.dtype)) * (dt / implicit) if f is not None else None
    w_h = torch.fft.rfft2(w0)
    per_record = round(record_every / dt)
    frames = round(t_final / record_every)
    out = torch.empty(n, frames, s, s, dtype=w0.dtype, device=w0.device)
    for frame in range(frames):
        for _ in range(per_record):
            u, v, w_x, w_y = (torch.fft.irfft2(m * w_h, s=(s, s)) for m in multipliers)
            w_h = explicit * w_h - advect * torch.fft.rfft2(torch.addcmul(u * w_x, v, w_y))
            if f_h is not None:
                w_h = w_h + f_h
        out[:, frame] = torch.fft.irfft2(w_h, s=(s, s))
        if on_record is not None:
            on_record(frame + 1)
    return out


def dataset_path(cfg: NavierStokesConfig, root: str | Path) -> Path:
    """``root/navier-stokes/ns_nu{nu}_{n}x{res}_T{T}_{hash}.pt``; the hash covers every parameter."""
    digest = hashlib.sha1(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:10]
    return Path(root) / "navier-stokes" / f"ns_nu{cfg.viscosity:g}_{cfg.n_samples}x{cfg.resolution}_T{cfg.t_final}_{digest}.pt"


def load_dataset(path: str | Path, cfg: NavierStokesConfig | None = None) -> dict:
    """A generated file: ``{"format", "params", "vorticity" (n, T, s, s), "initial" (n, s, s; version 2 on), "times"}``
    (``vorticity[:, k]`` at t = k + 1, ``initial`` at t = 0). With ``cfg``, its
    recorded parameters must equal ``cfg``'s (a file never silently stands in for another)."""
    path = Path(path)
    if not path.is_file():
        raise FixptError(f"Navier-Stokes data file {path} does not exist; make it with `fixpt data navier-stokes`")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise FixptError(f"{path} is not a readable Navier-Stokes data file ({type(e).__name__}); delete it and regenerate") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "vorticity" not in data:
        raise FixptError(f"{path} is not a fixpt Navier-Stokes data file; make one with `fixpt data navier-stokes`")
    w = data["vorticity"]
    p = data.get("params", {})
    if w.ndim != 4 or w.shape[-1] != w.shape[-2] or w.shape[1] < 1:
        raise FixptError(f"{path}: vorticity has shape {tuple(w.shape)}; expected (samples, frames, s, s)")
    if "initial" in data and tuple(data["initial"].shape) != (w.shape[0], *w.shape[2:]):
        raise FixptError(f"{path}: initial has shape {tuple(data['initial'].shape)}; expected (samples, s, s) = "
                         f"{(w.shape[0], *w.shape[2:])}; delete it and regenerate")
    if cfg is not None and p != asdict(cfg):
        diff = sorted(k for k in set(p) | set(asdict(cfg)) if p.get(k) != asdict(cfg).get(k))
        raise FixptError(f"{path} was generated with other parameters ({', '.join(diff)} differ); delete it or change the options")
    return data


def generate(cfg: NavierStokesConfig, root: str | Path, *, device: str | torch.device = "cpu", batch: int = 64,
             on_progress: Callable[[float], None] | None = None, need_initial: bool = False) -> Path:
    """Generate the data set of ``cfg`` under ``root`` unless the same one is there; returns its path.
    ``on_progress(fraction)`` follows the simulation. Files hold the t = 0 fields (``initial``) since
    version 2; ``need_initial`` regenerates an older file of the same parameters that lacks them."""
    cfg.validate()
    path = dataset_path(cfg, root)
    if path.is_file():
        old = load_dataset(path, cfg)  # the same parameters, or an error naming the difference
        if "initial" in old or not need_initial:
            return path
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = torch.device(device)
    f = forcing(cfg.fine, device=dev)
    sub = cfg.fine // cfg.resolution
    chunks, initial = [], []
    for start in range(0, cfg.n_samples, batch):
        n = min(batch, cfg.n_samples - start)
        w0 = gaussian_random_field(n, cfg.fine, cfg.alpha, cfg.tau, generator=gen, device=dev)
        initial.append(w0[..., ::sub, ::sub].float().cpu())
        done = lambda frame, start=start, n=n: on_progress and on_progress((start + n * frame / cfg.t_final) / cfg.n_samples)  # noqa: E731
        w = solve_vorticity(w0, f, cfg.viscosity, cfg.t_final, cfg.dt, on_record=done)
        if not torch.isfinite(w).all():
            raise FixptError(f"the simulation diverged (non-finite vorticity) with dt={cfg.dt} on a {cfg.fine}^2 grid; use a smaller dt")
        chunks.append(w[..., ::sub, ::sub].float().cpu())
    from ..checkpoint import atomic_write

    payload = {"format": FORMAT, "version": 2, "params": asdict(cfg), "vorticity": torch.cat(chunks),
               "initial": torch.cat(initial), "times": list(range(1, cfg.t_final + 1))}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path
