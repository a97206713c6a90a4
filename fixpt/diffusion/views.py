"""The commands' view of a trained DDPM: ``fixpt iterate CKPT --steps ...`` (samples with each number of
denoising steps from the same starting noise) and ``fixpt check-contraction CKPT --t ...`` (the local
Jacobian norm of the reverse step map at chosen timesteps)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from rich.markup import escape

from ..config import from_dict
from ..errors import FixptError
from ..views.base import PowerIterationOptions, TextTable, Trained, View, ViewResult


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
    (``steps_{n}.png``, titled with the count) and an overview (``steps_overview.png``: 8 samples, one row per
    count, each row labelled with its count).

    ``change`` is the root-mean-square pixel difference (pixels in [-1, 1]) from the samples of the
    previous step count: with the deterministic DDIM sampler it shrinks as the samples stop depending
    on the number of iterations. The ancestral DDPM sampler draws new noise at every step, so with
    another step count it makes another sample, and the change stays large."""
    from ..plots import image_panels_figure, save_figure
    from .metrics import digits_classifier, quality_score
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
        grid = save_figure(image_panels_figure([(f"{n} steps", x)], f"{sampler} sampling, {n} of T = {model.timesteps} steps "
                                               f"({n_samples} samples, seed {seed})", nrow=int(math.ceil(math.sqrt(n_samples)))),
                           out_dir / f"steps_{n}.png")
        row = {"steps": n, "change": None if previous is None else float((x - previous).pow(2).mean().sqrt()), "grid": str(grid)}
        if clf is not None:
            row["quality"] = quality_score(clf, x)["confident"]
        rows.append(row)
        previous = x
        firsts.append((f"{n} steps", x[:8]))
    overview = save_figure(image_panels_figure(firsts, f"{sampler} sampling from one noise, T = {model.timesteps}: "
                                               "one row per number of steps"), out_dir / "steps_overview.png")
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


@dataclass
class StepsOptions:
    steps: str | None = field(default=None, metadata={"help": "diffusion models: denoising step counts, e.g. 10,50,100,250,1000 "
                                                               "[default: 10,50,100,250,500,T]"})
    samples: int = field(default=64, metadata={"min": 1, "help": "diffusion models: images sampled per step count"})
    sampler: str = field(default="ddim", metadata={"help": "diffusion models: ddim (deterministic, eta 0) or ddpm (ancestral, "
                                                           "fresh noise each step)"})
    seed: int = field(default=0, metadata={"min": 0, "help": "diffusion models: seed of the starting noise and of the sampler"})
    out: str | None = field(default=None, metadata={"help": "diffusion models: folder for the image grids [default: CKPT's folder/iterate]"})


@dataclass
class ReverseStepOptions(PowerIterationOptions):
    samples: int = field(default=8, metadata={"min": 1, "help": "diffusion models: noised test images where the norm is measured"})
    t: str | None = field(default=None, metadata={"help": "diffusion models: timesteps of the reverse step x_t -> x_(t-1), e.g. 999,500,100,10"})


class DiffusionView(View):
    """The iterations of a DDPM are its denoising steps; its operator is the reverse step at a timestep."""

    name = "diffusion"
    iterate_options = StepsOptions
    contraction_options = ReverseStepOptions

    def iterate(self, trained: Trained, opts: StepsOptions, progress=None) -> ViewResult:
        model = trained.model
        counts = parse_ints(opts.steps, "--steps") if opts.steps is not None else default_steps(model.timesteps)
        out_dir = Path(opts.out) if opts.out else Path(trained.path).parent / "iterate"
        data_cfg = from_dict(trained.task.data_config, trained.checkpoint["data"])
        advance = progress("sampling", sum(counts), f"{opts.samples} images") if progress else None
        result = iterate_steps(model, trained.data, data_cfg, counts, n_samples=opts.samples, seed=opts.seed, out_dir=out_dir,
                               on_step=advance, sampler=opts.sampler)
        has_quality = "quality" in result["rows"][0]
        table = TextTable(f"ddpm (T = {model.timesteps}), {opts.sampler} sampler: {opts.samples} samples per step count, same "
                          "starting noise", ["steps", "RMS change from previous", *(["quality (confident share)"] if has_quality else []),
                                             "grid"], left=("grid",))
        table.rows = [[str(r["steps"]), "-" if r["change"] is None else f"{r['change']:.4f}",
                       *([f"{r['quality']:.3f}"] if has_quality else []), Path(r["grid"]).name] for r in result["rows"]]
        note = escape(f"wrote the grids and {Path(result['overview']).name} (8 samples per step count, one row each) to {out_dir}; "
                      f"timesteps: {result['spacing']}")
        return ViewResult(result, [table], [note])

    def check_iterate(self, opts: StepsOptions) -> None:
        from .sampling import SAMPLERS

        if opts.samples < 1:
            raise FixptError("--samples must be >= 1")
        if opts.sampler not in SAMPLERS:
            raise FixptError(f"unknown --sampler {opts.sampler!r}; use one of {', '.join(SAMPLERS)}")

    def contraction(self, trained: Trained, opts: ReverseStepOptions) -> ViewResult:
        model = trained.model
        T = model.timesteps
        ts = parse_ints(opts.t, "--t") if opts.t is not None else sorted({T - 1, T // 2, T // 10, 1}, reverse=True)
        result = reverse_step_contraction(model, trained.data, ts, n_samples=opts.samples, iters=opts.iters, seed=opts.seed,
                                          threshold=opts.threshold)
        table = TextTable(f"ddpm (T = {T}): ||d x_(t-1) / d x_t||_2 of the reverse step over {result['samples']} noised test images",
                          ["t", "min", "median", "max", f"share < {opts.threshold:g}", "verdict"])
        colour = {"contracts": "green", "mixed": "yellow", "expands": "red"}
        table.rows = [[str(r["t"]), f"{r['min']:.4f}", f"{r['median']:.4f}", f"{r['max']:.4f}", f"{r['contracting_share']:.2f}",
                       f"[{colour[r['verdict']]}]{r['verdict']}[/]"] for r in result["rows"]]
        notes = ["local norms only: no certified bound exists for a trained UNet's reverse step"]
        return ViewResult(result, [table], notes, ok=result["contractive"])


DIFFUSION_VIEW = DiffusionView()
