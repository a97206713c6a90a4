"""Benchmark: Navier-Stokes generator throughput, samples per second at 64 x 64 and T = 20.

    python benchmarks/navier_stokes.py [--device cpu|cuda] [--batches 1,16,64] [--steps 200]

The solver's cost per time step is constant, so it is timed over ``--steps`` steps (after a
warm-up) and extrapolated to a whole trajectory, T = 20 time units: 200 000 steps at the paper's
dt = 1e-4 (solved on 64 x 64, i.e. without the 256 -> 64 subsampling, which costs 16x more),
20 000 at the small size's dt = 1e-3. Beside it, in the same process and on the same inputs, a
baseline written the way the FNO reference code steps (four separate inverse FFTs per step, the
forcing added as its own term); the two are checked to agree before timing, and the ratio is
reported.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from fixpt.data.navier_stokes import forcing, gaussian_random_field, solve_vorticity, wavenumbers


def baseline_steps(w0, f, nu, dt, steps):
    """The FNO reference code's step, kept as the baseline: four separate ``irfft2`` per step."""
    s = w0.shape[-1]
    kx, ky = wavenumbers(s, w0.device, w0.dtype)
    lap = 4 * math.pi ** 2 * (kx ** 2 + ky ** 2)
    lap_safe = lap.clone()
    lap_safe[0, 0] = 1.0
    kmax = s // 2
    dealias = ((kx.abs() <= 2 / 3 * kmax) & (ky.abs() <= 2 / 3 * kmax)).to(w0.dtype)
    w_h, f_h = torch.fft.rfft2(w0), torch.fft.rfft2(f)
    for _ in range(steps):
        psi_h = w_h / lap_safe
        q = torch.fft.irfft2(2j * math.pi * ky * psi_h, s=(s, s))
        v = torch.fft.irfft2(-2j * math.pi * kx * psi_h, s=(s, s))
        w_x = torch.fft.irfft2(2j * math.pi * kx * w_h, s=(s, s))
        w_y = torch.fft.irfft2(2j * math.pi * ky * w_h, s=(s, s))
        adv_h = torch.fft.rfft2(q * w_x + v * w_y) * dealias
        w_h = (-dt * adv_h + dt * f_h + (1 - 0.5 * dt * nu * lap) * w_h) / (1 + 0.5 * dt * nu * lap)
    return torch.fft.irfft2(w_h, s=(s, s))


def timed(fn, device, repeats=3):
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help='cpu or cuda')
    p.add_argument("--batches", default="1,16,64", help='trajectories solved at once, one table row each, comma-separated')
    p.add_argument("--steps", type=int, default=200, help='timed solver steps per batch (after warm-up), extrapolated to a trajectory')
    p.add_argument("--resolution", type=int, default=64, help="grid side solved on (64: the paper's saved grid)")
    args = p.parse_args()
    device = torch.device(args.device)
    s, nu, steps = args.resolution, 1e-3, args.steps
    print(f"Navier-Stokes generator on {device} ({torch.get_num_threads()} threads), {s} x {s}, float32, {steps} timed steps\n")
    print("| batch | ms / step (fixpt) | ms / step (FNO-style baseline) | speed-up | samples/s, T=20, dt=1e-4 | samples/s, T=20, dt=1e-3 |")
    print("|---:|---:|---:|---:|---:|---:|")
    for batch in (int(b) for b in args.batches.split(",")):
        w0 = gaussian_random_field(batch, s, generator=torch.Generator().manual_seed(0), device=device)
        f = forcing(s, device=device)
        dt = 1e-4
        ours = solve_vorticity(w0, f, nu, steps * dt, dt, record_every=steps * dt)[:, -1]
        base = baseline_steps(w0, f, nu, dt, steps)
        assert torch.allclose(ours, base, atol=1e-4 * float(base.abs().max())), "the two steppers disagree"
        t_ours = timed(lambda: solve_vorticity(w0, f, nu, steps * dt, dt, record_every=steps * dt), device) / steps
        t_base = timed(lambda: baseline_steps(w0, f, nu, dt, steps), device) / steps
        per_sample = lambda dt_run: batch / (t_ours * round(20 / dt_run))  # noqa: E731
        print(f"| {batch} | {1e3 * t_ours:.3f} | {1e3 * t_base:.3f} | {t_base / t_ours:.2f}x | {per_sample(1e-4):.4f} | {per_sample(1e-3):.3f} |")


if __name__ == "__main__":
    main()
