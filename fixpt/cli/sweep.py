"""``fixpt sweep`` and ``fixpt report``: the commands over :mod:`fixpt.sweep` and :mod:`fixpt.report`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..errors import FixptError
from .console import DeviceOpt, JsonOpt, err, out, print_json, user_errors


@user_errors
def sweep(
    preset: Annotated[Path, typer.Argument(help="a preset YAML, e.g. presets/table5.yaml")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="sweep directory (default: sweeps/<preset name>)")] = None,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="run seeds 0..N-1 (overrides the preset)")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override a key: key=value, or key=\\[a,b] for a grid axis (repeatable)")] = None,
    workers: Annotated[int, typer.Option("--workers", help="runs at once, each in its own process (one GPU each when several)")] = 1,
    seed_batch: Annotated[int, typer.Option("--seed-batch", help="train up to N seeds of one graph configuration together as one "
                                            "batched model (torch.func.vmap); 1: one run at a time")] = 1,
    device: DeviceOpt = "auto",
    no_ckpt: Annotated[bool, typer.Option("--no-ckpt", help="do not keep each run's ckpt.pt")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the table of runs and their status, then exit")] = False,
    json_: JsonOpt = False,
) -> None:
    """Expand a preset's grid and run every point; rerunning skips the complete runs. Exit 1 if any run failed."""
    from .. import sweep as sw

    if workers < 1:
        raise FixptError(f"--workers {workers} must be >= 1")
    if seed_batch < 1:
        raise FixptError(f"--seed-batch {seed_batch} must be >= 1 (1: one run at a time)")
    plan = sw.load_preset(preset, seeds=seeds, overrides=sw.parse_set(set_ or []))
    out_dir = out_dir or Path("sweeps") / plan.name
    labels = {r.id: sw.describe(r, plan.varying) for r in plan.runs}
    if dry_run:
        statuses = {r.id: sw.status(out_dir, r) for r in plan.runs}
        if json_:
            print_json({"out": str(out_dir), "runs": [{**r.as_dict(), "status": statuses[r.id]} for r in plan.runs]})
            return
        table = Table(title=f"{plan.name}: {len(plan.runs)} runs into {out_dir}")
        for col in ("#", "run", "id", "status"):
            table.add_column(col)
        for i, r in enumerate(plan.runs, 1):
            table.add_row(str(i), labels[r.id], r.id, statuses[r.id])
        out.print(table)
        return
    sw.write_index(out_dir, plan, str(preset))

    interactive = err.is_terminal
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), TextColumn("{task.fields[current]}"), console=err, disable=not interactive)
    skipped = sum(1 for r in plan.runs if sw.status(out_dir, r) == "done")
    running: list[str] = []
    with progress:
        task = progress.add_task(plan.name, total=len(plan.runs), completed=skipped, current="")

        def on_start(run):
            running.append(labels[run.id])
            progress.update(task, current=" | ".join(running[-2:]))

        def on_done(run, result):
            if labels[run.id] in running:
                running.remove(labels[run.id])
            progress.update(task, advance=1, current=" | ".join(running[-2:]))
            done = int(progress.tasks[0].completed)
            if result["status"] == "done":
                m = result["metrics"]
                score = next((f"{k}={v:.4f}" for k, v in m.items() if k.startswith("test_")), "")
                line = f"[{done}/{len(plan.runs)}] done   {labels[run.id]}  {score}  ({result['seconds']:.1f} s)"
            else:
                line = f"[{done}/{len(plan.runs)}] FAILED {labels[run.id]}  {result['error']}"
            if interactive:
                progress.console.print(line, highlight=False)
            else:
                print(line, file=sys.stderr, flush=True)

        counts = sw.run_sweep(plan, out_dir, device=device, workers=workers, save_ckpt=not no_ckpt, seed_batch=seed_batch,
                              on_start=on_start, on_done=on_done)
    summary = {k: counts[k] for k in ("total", "finished", "skipped", "failed")}
    if json_:
        print_json({"out": str(out_dir), **summary, "errors": counts["errors"]})
    else:
        out.print(f"{plan.name}: {summary['finished']} finished, {summary['skipped']} skipped (already complete), "
                  f"{summary['failed']} failed, of {summary['total']} runs in {out_dir}")
        for rid, e in counts["errors"].items():
            out.print(f"  failed {labels.get(rid, rid)} ({rid}): {e}", highlight=False)
        if counts["failed"]:
            out.print("rerun the same command to retry the failed runs; each one's error.json holds the traceback")
    if counts["failed"]:
        raise typer.Exit(1)


@user_errors
def report(
    sweep_dir: Annotated[Path, typer.Argument(help="a directory written by `fixpt sweep`")],
    fmt: Annotated[str, typer.Option("--format", help="md, latex, csv or json")] = "md",
    layout: Annotated[Optional[str], typer.Option("--layout", help="table5, table1, recycle, fig2 or generic (default: the preset's)")] = None,
    compare: Annotated[Optional[str], typer.Option("--compare", help="'paper': the published numbers beside ours, with the difference")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="write PNG figures into this folder")] = None,
    select: Annotated[bool, typer.Option("--select", help="per cell, keep only the setting (the varying keys the layout "
                                         "does not show) with the best mean validation score, and list the choices")] = False,
    protocol: Annotated[str, typer.Option("--protocol", help="best-val: test score at each run's best-validation epoch; "
                                          "last-epoch: after the last epoch (the paper's protocol)")] = "best-val",
) -> None:
    """Aggregate a sweep (mean +- std over seeds) into the paper's table layout; best of each column in bold."""
    from ..report import make_report

    report = make_report(sweep_dir, layout=layout, fmt=fmt, compare=compare, select=select, protocol=protocol, plot=plot)
    sys.stdout.write(report.text)
    for line in report.notes:
        err.print(line)
    for p in report.written:
        err.print(f"wrote {p}")
