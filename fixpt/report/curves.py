r"""Test error against training steps and training FLOPs, one line per configuration (``fixpt report --plot``).

Every run of the epoch loop writes ``history.csv`` (one row per epoch, with ``test_<metric>``) and records in
``metrics.json`` the steps of an epoch (``train_steps_per_epoch``) and an estimate of one step's FLOPs
(``train_flops_per_step``, :mod:`fixpt.training.flops`). Epoch :math:`e` of a run then sits at
:math:`e \cdot S` steps and :math:`e \cdot S \cdot F` FLOPs. A configuration (the runs equal in everything but
the seed) is one line: at each epoch, the mean test score of the seeds that reached it. A run with no history
or no step count is left out of the figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..training.rundir import HISTORY, RunDir
from .runs import FinishedRun, setting_label


@dataclass
class Curve:
    """One configuration: per epoch, its steps, its FLOPs (None where a run recorded no count) and the seeds' scores."""

    steps: dict[int, float] = field(default_factory=dict)
    flops: dict[int, float | None] = field(default_factory=dict)
    scores: dict[int, list[float]] = field(default_factory=dict)

    def points(self) -> tuple[list[float], list[float | None], list[float]]:
        """(steps, FLOPs, mean score) in epoch order."""
        epochs = sorted(self.scores)
        return ([self.steps[e] for e in epochs], [self.flops[e] for e in epochs],
                [sum(self.scores[e]) / len(self.scores[e]) for e in epochs])


def curve_label(run: FinishedRun, varying: list[str]) -> str:
    """The model and the run's varying settings; a run that sets none of them (an ablation's base) says it runs
    the defaults, as its table row does (:class:`fixpt.report.generic.Generic`)."""
    keys = [k for k in varying if k not in ("seed", "model")]  # the label starts with the model already
    settings = [label for k in keys if (label := setting_label(run, k))]
    if settings or not keys:
        return " ".join([run.model] + settings)
    return f"{run.model} (defaults)"


def learning_curves(runs: list[FinishedRun], metric: str, varying: list[str]) -> dict[str, Curve]:
    """The test score by epoch of each configuration, labelled by its model and varying keys other than the seed."""
    curves: dict[str, Curve] = {}
    key = f"test_{metric}"
    for run in runs:
        steps = run.metrics.get("train_steps_per_epoch")
        if run.folder is None or not isinstance(steps, int) or not (run.folder / HISTORY).is_file():
            continue
        flops = run.metrics.get("train_flops_per_step")
        label = curve_label(run, varying)
        curve = curves.setdefault(label, Curve())
        for row in RunDir(run.folder).read_history():
            epoch, score = row.get("epoch"), row.get(key)
            if isinstance(epoch, int) and isinstance(score, (int, float)):
                curve.steps[epoch] = float(epoch * steps)
                counted = float(epoch * steps * flops) if isinstance(flops, (int, float)) else None
                curve.flops[epoch] = None if epoch in curve.flops and curve.flops[epoch] is None else counted
                curve.scores.setdefault(epoch, []).append(float(score))
    return {label: c for label, c in curves.items() if c.scores}


def curves_figure(runs: list[FinishedRun], metric: str, varying: list[str], path: Path) -> Path | None:
    """The two-panel figure of :func:`learning_curves` (None: no run has a history)."""
    from ..plots import plot_learning_curves

    curves = learning_curves(runs, metric, varying)
    if not curves:
        return None
    return plot_learning_curves({label: c.points() for label, c in sorted(curves.items())}, metric, path)
