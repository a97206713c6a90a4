"""Rows of the predictors that need no training, under the models' rows of a score table.

A task may score such predictors (``Task.reference_scores``: zero, the training mean, ...); every run then
records them in its ``metrics.json`` under ``references``, ``{name: {"test_<metric>": v, ...}}``. Each
becomes a row ``reference: <name>``, placed in the column its runs' models sit in. The score depends on
the data only, so a cell keeps each distinct value once (runs on the same data give one value; data
settings that vary in the sweep get a row each). Reference rows are never marked best.
"""

from __future__ import annotations

import dataclasses

from ..registry import MODELS, TASKS
from .layout import Options
from .runs import FinishedRun, SweepRuns
from .table import Cell, Note, Row, Table


def data_setting(run: FinishedRun, varying: list[str]) -> str:
    """The varying keys of the run's data config, as ``key=value`` labels: what its reference scores depend on."""
    task = TASKS.get(run.task or MODELS.get(run.model).task)
    names = {f.name for f in dataclasses.fields(task.data_config)}
    return ", ".join(f"{k}={run.params[k]}" for k in varying if k in names and k in run.params)


def add_reference_rows(table: Table, layout, sweep: SweepRuns, options: Options, metric: str, varying: list[str]) -> None:
    """Append one row per reference predictor (and data setting) that the runs recorded for ``test_<metric>``."""
    key = f"test_{metric}"
    values: dict[tuple[str, str], set[float]] = {}
    for run in sweep.runs:
        refs = run.metrics.get("references")
        if not isinstance(refs, dict):
            continue
        column = layout.place(run, metric, varying, options).column
        setting = data_setting(run, varying)
        for name, scores in refs.items():
            if isinstance(scores, dict) and isinstance(scores.get(key), (int, float)):
                label = f"reference: {name}" + (f" ({setting})" if setting else "")
                values.setdefault((label, column), set()).add(float(scores[key]))
    if not values:
        return
    for (label, column), found in values.items():
        row = next((r for r in table.rows if r.label == label), None)
        if row is None:
            row = Row(label, ranked=False)
            table.rows.append(row)
        row.cells[column] = Cell(sorted(found), fields={"reference": True})
    table.notes.append(Note(["reference rows: predictors that need no training (the task's closed-form baselines), scored "
                             "on the same test split; not ranked"]))
