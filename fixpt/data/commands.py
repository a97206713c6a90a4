"""``fixpt data ...``: generate the data sets that cannot be downloaded here (a command of the field family).
Light at import (torch and the generators are imported inside the command): ``fixpt --help`` imports it."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..cli.console import DeviceOpt, JsonOpt, err, print_json, user_errors
from ..errors import FixptError
from ..registry import register_commands

data_app = typer.Typer(no_args_is_help=True, help="Generate data sets (written once, reused when the same options come again).")
register_commands(lambda app: app.add_typer(data_app, name="data"))


@data_app.command("navier-stokes")
@user_errors
def navier_stokes(
    size: Annotated[str, typer.Option("--size", help="small (300 x 32^2, minutes on a CPU) or paper (1200 x 64^2 from 256^2, dt 1e-4)")] = "small",
    n_samples: Annotated[Optional[int], typer.Option("--n-samples", help="trajectories \\[default: the size's]")] = None,
    resolution: Annotated[Optional[int], typer.Option("--resolution", help="saved grid \\[default: the size's]")] = None,
    fine: Annotated[Optional[int], typer.Option("--fine", help="solver grid, a multiple of --resolution \\[default: the size's]")] = None,
    viscosity: Annotated[float, typer.Option("--viscosity", help="1e-3, 1e-4 or 1e-5")] = 1e-3,
    t_final: Annotated[int, typer.Option("--t-final", help="frames recorded at t = 1 .. T")] = 20,
    dt: Annotated[Optional[float], typer.Option("--dt", help="time step \\[default: the size's]")] = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of the initial fields")] = 0,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="root folder \\[default: ~/.cache/fixpt]; the file goes to OUT/navier-stokes/")] = None,
    batch: Annotated[int, typer.Option("--batch", help="trajectories solved at once")] = 64,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """2-D Navier-Stokes vorticity on the torus (the FNO recipe); prints the file's path (alone on stdout)."""
    from ..config import from_dict
    from ..device import resolve_device
    from .navier_stokes import SIZES, NavierStokesConfig, dataset_path, generate, load_dataset
    from ..training.rundir import writable_folder
    from .planetoid import cache_dir

    if size not in SIZES:
        raise FixptError(f"unknown --size {size!r}; use {' or '.join(SIZES)}")
    given = {"n_samples": n_samples, "resolution": resolution, "fine": fine, "dt": dt}
    values = {**SIZES[size], **{k: v for k, v in given.items() if v is not None}, "viscosity": viscosity,
              "t_final": t_final, "seed": seed}
    if resolution is not None and fine is None:
        values["fine"] = max(resolution, SIZES[size]["fine"] // SIZES[size]["resolution"] * resolution)
    if batch < 1:
        raise FixptError(f"--batch {batch} must be >= 1 (trajectories solved at once)")
    cfg = from_dict(NavierStokesConfig, values, what="navier-stokes")
    root = writable_folder(out_dir) if out_dir is not None else cache_dir()
    path = dataset_path(cfg, root)
    reused = path.is_file()
    start = time.perf_counter()
    with Progress(TextColumn("[bold]navier-stokes"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, disable=not err.is_terminal or as_json or reused) as progress:
        bar = progress.add_task("simulate", total=1.0)
        path = generate(cfg, root, device=resolve_device(device), batch=batch,
                        on_progress=lambda frac: progress.update(bar, completed=frac))
    shape = tuple(load_dataset(path, cfg)["vorticity"].shape)
    result = {"path": str(path), "reused": reused, "shape": list(shape), "seconds": time.perf_counter() - start,
              "params": dataclasses.asdict(cfg)}
    if as_json:
        print_json(result)
    else:
        what = "reused" if reused else f"generated in {result['seconds']:.1f} s"
        err.print(f"{path} ({what}): vorticity {shape} = (samples, frames at t = 1..{cfg.t_final}, grid, grid)", highlight=False,
                  markup=False, soft_wrap=True)
        print(path)  # stdout holds the path alone: F=$(fixpt data navier-stokes ...)
