"""The commands' view of a trained DDPM: ``fixpt iterate CKPT --steps ...`` (samples with each number of
denoising steps from the same starting noise) and ``fixpt check-contraction CKPT --t ...`` (the local
Jacobian norm of the reverse step map at chosen timesteps)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch

from ..errors import FixptError


def parse_ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise FixptError(f"{what} {text!r}: give whole numbers separated by commas, e.g. 10,50,100") from None
    if not values:
        raise FixptError(f"{what} is empty; give whole numbers separated by commas, e.g. 10,50,100")
    return values


def default_steps(T: int) -> list[int]:
    return sorted({n for n in (10, 50, 100, 250, 500) if n < T} | {T})


def iterate_steps(model, data, data_cfg, steps: list[int], *, n_samples: int, seed: int, out_dir: Path,
                  on_step: Callable[[], None] | None = None, sampler: str = "ddim") -> dict:
    """Sample ``n_samples`` images with each step count from one starting noise; write a grid per count
    (``steps_{n}.png``) and an overview (``steps_overview.png``: 8 samples, one row per count).

    ``change`` is the root-mean-square pixel difference (pixels in [-1, 1]) from the samples of the
    previous step count: with the deterministic DDIM sampler it shrinks as the samples stop depending
    on the number of iterations. The ancestral DDPM sampler draws new noise at every step, so with
    another step count it makes another sample, and the change stays large."""
    from .metrics import digits_classifier, quality_score, save_grid
    from .sampling import sample, sampling_timesteps

    for n in steps:
        sampling_timesteps(model, n)  # validates 1 <= n <= T
    dev = next(model.parameters()).device
    noise = torch.randn((n_samples, *data.test.shape[1:]), generator=torch.Generator().manual_seed(seed)).to(dev)
    clf = digits_classifier(data_cfg)[0] if data.name == "digits" else None
    rows, previous, firsts = [], None, []
    for n in steps:
        x = sample(model, noise, n, generator=torch.Generator(device=dev).manual_seed(seed + 1), sampler=sampler,
                   on_step=(lambda i: on_step()) if on_step else None).cpu()
        grid = save_grid(x, out_dir / f"steps_{n}.png", nrow=int(math.ceil(math.sqrt(n_samples))))
        row = {"steps": n, "change": None if previous is None else float((x - previous).pow(2).mean().sqrt()), "grid": str(grid)}
        if clf is not None:
            row["quality"] = quality_score(clf, x)["confident"]
        rows.append(row)
        previous = x
        firsts.append(x[:8])
    overview = save_grid(torch.cat(firsts), out_dir / "steps_overview.png", nrow=min(8, n_samples))
    return {"model": "ddpm", "timesteps": model.timesteps, "samples": n_samples, "seed": seed, "sampler": sampler,
            "spacing": "trailing: t_i = round(T - i T / n) - 1", "rows": rows, "overview": str(overview)}


def reverse_step_contraction(model, data, ts: list[int], *, n_samples: int, iters: int, seed: int, threshold: float = 1.0) -> dict:
    r"""Per timestep t: :math:`\|\partial x_{t-1} / \partial x_t\|_2` at ``n_samples`` points :math:`x_t \sim q(x_t | x_0)`
    (test images noised to level t with seeded noise), by power iteration."""
    from .sampling import reverse_step_norms

    T = model.timesteps
    bad = [t for t in ts if not 1 <= t < T]
    if bad:
        raise FixptError(f"--t {bad[0]}: the reverse step x_t -> x_(t-1) exists for t in 1..{T - 1} (T = {T})")
    dev = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    x0 = data.test[torch.randperm(len(data.test), generator=gen)[:n_samples]]
    noise = torch.randn(x0.shape, generator=gen)
    for p in model.parameters():
        p.requires_grad_(False)
    rows = []
    for t in ts:
        tt = torch.full((len(x0),), t, dtype=torch.long)
        x_t = model.add_noise(x0, noise, tt).to(dev)
        norms = reverse_step_norms(model, x_t, t, iters=iters, seed=seed).cpu()
        share = float((norms < threshold).float().mean())
        verdict = "contracts" if share == 1.0 else "expands" if share == 0.0 else "mixed"
        rows.append({"t": t, "min": float(norms.min()), "median": float(norms.median()), "max": float(norms.max()),
                     "contracting_share": share, "verdict": verdict})
    return {"model": "ddpm", "timesteps": T, "samples": len(x0), "threshold": threshold, "rows": rows,
            "contractive": all(r["verdict"] == "contracts" for r in rows)}
