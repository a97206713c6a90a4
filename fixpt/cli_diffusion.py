"""The diffusion models' side of ``fixpt iterate`` and ``fixpt check-contraction``: there the
iterations are denoising steps (``--steps``) and the operator is the reverse step at ``--t``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .errors import FixptError


def is_diffusion(checkpoint: dict) -> bool:
    """Whether a checkpoint's contents (:func:`fixpt.checkpoint.load_checkpoint`) hold a diffusion model."""
    return checkpoint.get("task") == "image-generation"


def iterate_diffusion(ckpt: Path, checkpoint: dict, steps: Optional[str], samples: int, seed: int, out_dir: Optional[Path], device: str, as_json: bool,
                       sampler: str) -> None:
    from .cli import _train_progress, err, out, print_json
    from .config import from_dict
    from .diffusion.sampling import SAMPLERS
    from .diffusion.views import default_steps, iterate_steps, parse_ints
    from .train import load_trained

    if samples < 1:
        raise FixptError("--samples must be >= 1")
    if sampler not in SAMPLERS:
        raise FixptError(f"unknown --sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
    spec, task, model, data, meta = load_trained(ckpt, device, checkpoint)
    counts = parse_ints(steps, "--steps") if steps is not None else default_steps(model.timesteps)
    out_dir = out_dir or Path(ckpt).parent / "iterate"
    data_cfg = from_dict(task.data_config, meta["data"])
    with _train_progress(enabled=err.is_terminal and not as_json) as progress:
        bar = progress.add_task("sampling", total=sum(counts), stats=f"{samples} images")
        result = iterate_steps(model, data, data_cfg, counts, n_samples=samples, seed=seed, out_dir=out_dir,
                               on_step=lambda: progress.advance(bar), sampler=sampler)
    if as_json:
        print_json(result)
        return
    table = Table(title=f"ddpm (T = {model.timesteps}), {sampler} sampler: {samples} samples per step count, same starting noise")
    has_quality = "quality" in result["rows"][0]
    for col in ("steps", "RMS change from previous", *(["quality (confident share)"] if has_quality else []), "grid"):
        table.add_column(col, justify="right" if col != "grid" else "left")
    for r in result["rows"]:
        table.add_row(str(r["steps"]), "-" if r["change"] is None else f"{r['change']:.4f}",
                      *([f"{r['quality']:.3f}"] if has_quality else []), Path(r["grid"]).name)
    out.print(table)
    out.print(f"wrote the grids and {Path(result['overview']).name} (8 samples per step count, one row each) to {out_dir}; "
              f"timesteps: {result['spacing']}", highlight=False)


def contraction_diffusion(ckpt: Path, checkpoint: dict, t: Optional[str], samples: int, iters: int, seed: int, threshold: float,
                           device: str, as_json: bool) -> None:
    from .cli import out, print_json
    from .diffusion.views import parse_ints, reverse_step_contraction
    from .train import load_trained

    spec, task, model, data, meta = load_trained(ckpt, device, checkpoint)
    ts = parse_ints(t, "--t") if t is not None else sorted({model.timesteps - 1, model.timesteps // 2, model.timesteps // 10, 1}, reverse=True)
    result = reverse_step_contraction(model, data, ts, n_samples=samples, iters=iters, seed=seed, threshold=threshold)
    if as_json:
        print_json(result)
    else:
        table = Table(title=f"ddpm (T = {model.timesteps}): ||d x_(t-1) / d x_t||_2 of the reverse step over {result['samples']} "
                            "noised test images")
        for col in ("t", "min", "median", "max", f"share < {threshold:g}", "verdict"):
            table.add_column(col, justify="right")
        colour = {"contracts": "green", "mixed": "yellow", "expands": "red"}
        for r in result["rows"]:
            table.add_row(str(r["t"]), f"{r['min']:.4f}", f"{r['median']:.4f}", f"{r['max']:.4f}", f"{r['contracting_share']:.2f}",
                          f"[{colour[r['verdict']]}]{r['verdict']}[/]")
        out.print(table)
        out.print("local norms only: no certified bound exists for a trained UNet's reverse step")
    if not result["contractive"]:
        raise typer.Exit(1)
