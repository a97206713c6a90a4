"""A sweep directory's finished runs, as every layout reads them (see :mod:`fixpt.sweepdir`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FixptError
from ..registry import MODELS, TASKS
from ..sweepdir import INDEX, run_folder
from ..training.rundir import CONFIG, METRICS, RunDir


@dataclass
class FinishedRun:
    id: str
    model: str
    params: dict[str, Any]  # the flat parameters the preset gave the run (seed included)
    metrics: dict[str, Any]  # its metrics.json
    task: str | None  # the task it ran (None: a run older than the record; its model's default task)


@dataclass
class SweepRuns:
    folder: Path
    name: str
    layout: str  # the preset's ``report`` key
    varying: list[str]  # the keys that take more than one value, in grid order
    planned: int
    runs: list[FinishedRun]


def load_runs(sweep_dir: str | Path) -> SweepRuns:
    """The sweep's index and its finished runs (``metrics.json`` beside ``config.json``); at least one."""
    d = Path(sweep_dir)
    index_path = d / INDEX
    if not index_path.is_file():
        raise FixptError(f"{d} is not a sweep directory (no {INDEX}); run `fixpt sweep PRESET --out {d}` first")
    try:
        index = json.loads(index_path.read_text())
        planned = index["runs"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise FixptError(f"{index_path} is damaged; rerun the sweep command to rewrite it") from None
    runs = []
    for r in planned:
        folder = RunDir(run_folder(d, r["id"]))
        if folder.status() == "done":
            metrics = json.loads((folder / METRICS).read_text())
            task = json.loads((folder / CONFIG).read_text()).get("task", metrics.get("task"))
            runs.append(FinishedRun(r["id"], r["model"], r["params"], metrics, task))
    if not runs:
        raise FixptError(f"{d} has no finished runs yet ({len(planned)} planned); run or resume the sweep first")
    return SweepRuns(d, index.get("name", ""), index.get("report", "generic"), index.get("varying", []), len(planned), runs)


def higher_is_better(runs: list[FinishedRun]) -> bool:
    """The direction of the runs' score, from their task: the one source of truth for training and reports."""
    tasks = sorted({r.task or MODELS.get(r.model).task for r in runs})
    directions = {TASKS.get(t).higher_is_better for t in tasks}
    if len(directions) > 1:
        raise FixptError(f"the runs' tasks ({', '.join(tasks)}) rank their scores in opposite directions; report one task per sweep")
    return directions.pop()
