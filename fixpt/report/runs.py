"""A sweep directory's finished runs, as every layout reads them (see :mod:`fixpt.sweepdir`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FixptError
from ..registry import MODELS, TASKS
from ..sweepdir import INDEX, run_folder, varying_keys
from ..training.rundir import CONFIG, METRICS, RunDir


@dataclass
class FinishedRun:
    id: str
    model: str
    params: dict[str, Any]  # the flat parameters the preset gave the run (seed included)
    metrics: dict[str, Any]  # its metrics.json
    task: str | None  # the task it ran (None: a run older than the record; its model's default task)
    folder: Path | None = None  # its run folder (history.csv beside metrics.json)


@dataclass
class SweepRuns:
    folder: Path
    name: str
    layout: str  # the preset's ``report`` key
    varying: list[str]  # the keys that take more than one value, in grid order
    planned: int
    runs: list[FinishedRun]
    skipped: list[str]  # why runs with files were left out (damaged metrics, malformed index entries)


def load_runs(sweep_dir: str | Path, strict: bool = False) -> SweepRuns:
    """The sweep's index and its finished runs (valid ``metrics.json`` beside ``config.json``); at least one.
    A damaged run file or index entry is left out and named in ``skipped`` (``strict``: an error)."""
    d = Path(sweep_dir)
    index_path = d / INDEX
    if not index_path.is_file():
        return _plain_runs(d, strict)
    try:
        index = json.loads(index_path.read_text())
        planned = index["runs"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise FixptError(f"{index_path} is damaged; rerun the sweep command to rewrite it") from None
    if not isinstance(planned, list):
        raise FixptError(f"{index_path} is damaged; rerun the sweep command to rewrite it")
    runs, skipped = _gathered((_finished(d, index_path, i, r) for i, r in enumerate(planned)), strict)
    if not runs:
        raise FixptError(f"{d} has no finished runs yet ({len(planned)} planned); run or resume the sweep first")
    return SweepRuns(d, index.get("name", ""), index.get("report", "generic"), _varying(index.get("varying", []), runs),
                     len(planned), runs, skipped)


def _gathered(results, strict: bool) -> tuple[list[FinishedRun], list[str]]:
    """The runs of ``(run, why)`` pairs, and why the others are left out (a run not finished has neither);
    ``strict``: a damaged one is an error."""
    runs, skipped = [], []
    for run, why in results:
        if why is not None and strict:
            raise FixptError(f"{why} (--strict)")
        skipped += [why] if why is not None else []
        runs += [run] if run is not None else []
    return runs, skipped


def _varying(recorded: list[str], runs: list[FinishedRun]) -> list[str]:
    """The index's varying keys, plus any parameter the finished runs disagree on (:func:`varying_keys`): sweeps
    written before fixpt counted a key that only one grid of a union sets missed those, and a report must not
    pool different configurations as seeds."""
    return list(recorded) + [k for k in varying_keys(r.params for r in runs) if k not in recorded]


def _finished(d: Path, index_path: Path, i: int, r) -> tuple[FinishedRun | None, str | None]:
    """Entry ``i`` of the index as a finished run, or None and (for damaged files) why it is left out."""
    if not (isinstance(r, dict) and isinstance(r.get("id"), str) and isinstance(r.get("model"), str)
            and isinstance(r.get("params"), dict) and "/" not in r["id"]):
        return None, f"{index_path}: run entry {i} is malformed (needs an id, a model and params)"
    folder = RunDir(run_folder(d, r["id"]))
    if not (folder / METRICS).is_file():
        return None, None  # not finished: the note on planned runs covers it
    try:
        metrics = folder.read_metrics()
    except FixptError as e:
        return None, f"{e}; left out (rerun the sweep to redo the run)"
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError):
        return None, f"{folder / CONFIG} is missing or not JSON; left out (rerun the sweep to redo the run)"
    task = config.get("task", metrics.get("task")) if isinstance(config, dict) else metrics.get("task")
    return FinishedRun(r["id"], r["model"], r["params"], metrics, task, folder.path), None


NOT_SETTINGS = ("resume",)  # train options that say where a run came from, not what it is


def _plain_runs(d: Path, strict: bool) -> SweepRuns:
    """Runs of ``fixpt train`` outside a sweep: ``d`` itself, or the run folders right under it (``runs/``), each a
    ``metrics.json`` beside the ``config.json`` that ``fixpt train`` writes. They are compared by the settings they
    differ in: the options (the model among them) that take more than one value over the runs that have them, so
    that one model's own options, absent from another's runs, do not all count as differences."""
    folders = [d] if (d / METRICS).is_file() else sorted(p for p in d.iterdir() if (p / METRICS).is_file()) if d.is_dir() else []
    if not folders:
        raise FixptError(f"{d} is not a sweep directory (no {INDEX}), a run folder or a folder of runs (no */{METRICS}); "
                         f"run `fixpt sweep PRESET --out {d}` or `fixpt train MODEL --out {d}/NAME` first")
    runs, skipped = _gathered((_plain_run(RunDir(folder)) for folder in folders), strict)
    if not runs:
        raise FixptError(f"{d}: no run with a readable {METRICS} and {CONFIG}: {skipped[0]}")
    varying = [k for k in dict.fromkeys(k for r in runs for k in r.params) if k != "seed"
               and len({json.dumps(r.params[k], sort_keys=True) for r in runs if k in r.params}) > 1]
    return SweepRuns(d, d.name, "generic", varying, len(folders), runs, skipped)


def _plain_run(folder: RunDir) -> tuple[FinishedRun | None, str | None]:
    try:
        metrics = folder.read_metrics()
        config = json.loads((folder / CONFIG).read_text())
        params = {k: v for g in ("model_config", "data", "train") for k, v in config[g].items() if k not in NOT_SETTINGS}
        model = config["model"]
    except FixptError as e:
        return None, f"{e}; left out"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, (f"{folder / CONFIG} is missing or not a run's config; left out (`fixpt train` writes it since "
                      "2026-12-01; rerun the run to report it)")
    return FinishedRun(folder.path.name, model, {"model": model, **params}, metrics, config.get("task"), folder.path), None


def setting_label(run: FinishedRun, key: str) -> str | None:
    """``key=value`` for a parameter the run sets, None for one it leaves at its default."""
    return f"{key}={run.params[key]}" if key in run.params else None


def higher_is_better(runs: list[FinishedRun]) -> bool:
    """The direction of the runs' score, from their task: the one source of truth for training and reports."""
    tasks = sorted({r.task or MODELS.get(r.model).task for r in runs})
    directions = {TASKS.get(t).higher_is_better for t in tasks}
    if len(directions) > 1:
        raise FixptError(f"the runs' tasks ({', '.join(tasks)}) rank their scores in opposite directions; report one task per sweep")
    return directions.pop()
