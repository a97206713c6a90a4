"""``fixpt sweep``: the command over :mod:`fixpt.sweep`: a dry-run table, or the runs with live progress and a summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.markup import escape
from rich.table import Table

from ..errors import FixptError
from .console import DeviceOpt, JsonOpt, TrackerOpt, TrackerUriOpt, err, out, print_json, tracker_spec, user_errors


@user_errors
def sweep(
    preset: Annotated[Path, typer.Argument(help="a built-in preset by name (e.g. table5; see the README) or a preset YAML file")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="sweep directory (default: sweeps/<preset name>)")] = None,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="run seeds 0..N-1 (overrides the preset)")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override a key: key=value, or key=\\[a,b] for a grid axis (repeatable)")] = None,
    workers: Annotated[int, typer.Option("--workers", help="runs at once, each in its own process (one GPU each when several)")] = 1,
    seed_batch: Annotated[int, typer.Option("--seed-batch", help="train up to N seeds of one graph configuration together as one "
                                            "batched model (torch.func.vmap); 1: one run at a time")] = 1,
    executor: Annotated[str, typer.Option("--executor", help="local: --workers processes on this machine; ray: each run a Ray "
                                          "task on the cluster at --ray-address (needs pip install 'fixpt[ray]')")] = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="a running Ray cluster, e.g. 'auto' or "
                                                       "ray://host:10001 \\[default: start a local Ray instance]")] = None,
    cpus_per_run: Annotated[int, typer.Option("--cpus-per-run", help="CPUs a Ray task asks for (and the torch threads it uses)")] = 1,
    device: DeviceOpt = "auto",
    no_ckpt: Annotated[bool, typer.Option("--no-ckpt", help="do not keep each run's ckpt.pt")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the table of runs and their status, then exit")] = False,
    tracker: TrackerOpt = "none",
    tracker_uri: TrackerUriOpt = "",
    json_: JsonOpt = False,
) -> None:
    """Expand a preset's grid and run every point; rerunning skips the complete runs. Exit 1 if any run failed."""
    from .. import sweep as sw
    from ..training.rundir import writable_folder

    if workers < 1:
        raise FixptError(f"--workers {workers} must be >= 1")
    if seed_batch < 1:
        raise FixptError(f"--seed-batch {seed_batch} must be >= 1 (1: one run at a time)")
    if executor not in sw.EXECUTORS or cpus_per_run < 1:
        raise FixptError(f"--executor {executor!r} --cpus-per-run {cpus_per_run}: use local or ray, and at least 1 CPU per run")
    plan = sw.load_preset(preset, seeds=seeds, overrides=sw.parse_set(set_ or []))
    out_dir = out_dir or Path("sweeps") / plan.name
    labels = {r.id: sw.describe(r, plan.varying) for r in plan.runs}
    if dry_run:
        return _show_plan(plan, out_dir, labels, json_)
    writable_folder(out_dir)
    spec = tracker_spec(tracker, tracker_uri, plan.name) if tracker != "none" else None  # checked before any run
    sw.write_index(out_dir, plan, str(preset))
    skipped = sum(1 for r in plan.runs if sw.status(out_dir, r) == "done")
    with _SweepProgress(plan, labels, skipped) as live:
        counts = sw.run_sweep(plan, out_dir, device=device, workers=workers, save_ckpt=not no_ckpt, seed_batch=seed_batch,
                              on_start=live.on_start, on_done=live.on_done, executor=executor, ray_address=ray_address,
                              cpus_per_run=cpus_per_run, tracker=spec)
    _summarise(plan, out_dir, labels, counts, json_)


def _show_plan(plan, out_dir: Path, labels: dict, as_json: bool) -> None:
    from .. import sweep as sw

    statuses = {r.id: sw.status(out_dir, r) for r in plan.runs}
    if as_json:
        print_json({"out": str(out_dir), "runs": [{**r.as_dict(), "status": statuses[r.id]} for r in plan.runs]})
        return
    table = Table(title=escape(f"{plan.name}: {len(plan.runs)} runs into {out_dir}"))
    for col in ("#", "run", "id", "status"):
        table.add_column(col)
    for i, r in enumerate(plan.runs, 1):
        table.add_row(str(i), escape(labels[r.id]), r.id, statuses[r.id])
    out.print(table)


class _SweepProgress:
    """The bar of runs done (with the ones in flight) at a terminal, and one line per finished run on stderr."""

    def __init__(self, plan, labels: dict, skipped: int):
        self.plan, self.labels, self.running = plan, labels, []
        self.interactive = err.is_terminal
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[current]}"), console=err, disable=not self.interactive)
        self.task = self.progress.add_task(plan.name, total=len(plan.runs), completed=skipped, current="")

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def on_start(self, run) -> None:
        self.running.append(self.labels[run.id])
        self.progress.update(self.task, current=" | ".join(self.running[-2:]))

    def on_done(self, run, result: dict) -> None:
        label = self.labels[run.id]
        if label in self.running:
            self.running.remove(label)
        self.progress.update(self.task, advance=1, current=" | ".join(self.running[-2:]))
        done, total = int(self.progress.tasks[0].completed), len(self.plan.runs)
        if result["status"] == "done":
            score = next((f"{k}={v:.4f}" for k, v in result["metrics"].items() if k.startswith("test_")), "")
            line = f"[{done}/{total}] done   {label}  {score}  ({result['seconds']:.1f} s)"
        elif result["status"] == "elsewhere":
            line = f"[{done}/{total}] taken  {label}  (another sweep process holds or finished it)"
        else:
            line = f"[{done}/{total}] FAILED {label}  {result['error']}"
        if self.interactive:
            self.progress.console.print(line, highlight=False, markup=False)
        else:
            print(line, file=sys.stderr, flush=True)


def _summarise(plan, out_dir: Path, labels: dict, counts: dict, as_json: bool) -> None:
    summary = {k: counts[k] for k in ("total", "finished", "skipped", "failed", "elsewhere")}
    if as_json:
        print_json({"out": str(out_dir), **summary, "errors": counts["errors"]})
    else:
        out.print(f"{plan.name}: {summary['finished']} finished, {summary['skipped']} skipped (already complete), "
                  f"{summary['failed']} failed" + (f", {summary['elsewhere']} taken by another sweep process" if summary["elsewhere"] else "")
                  + f", of {summary['total']} runs in {out_dir}", markup=False)
        for rid, e in counts["errors"].items():
            out.print(f"  failed {labels.get(rid, rid)} ({rid}): {e}", highlight=False, markup=False)
        if counts["failed"]:
            out.print("rerun the same command to retry the failed runs; each one's error.json holds the traceback")
    if counts["failed"]:
        raise typer.Exit(1)
