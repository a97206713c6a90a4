"""Equal-compute comparisons: ``fixpt report --budget steps=N`` (or ``flops=X``, ``epochs=N``).

A run stopped by patience has trained for its own number of steps, so its best-validation score answers "how
good can this setting get", not "how good is it for the same compute". Under a budget ``B`` a run is scored at

.. math::  e^* = \\arg\\operatorname{best}_{e \\,:\\, c(e) \\le B} \\mathrm{val}(e), \\qquad
           \\mathrm{score} = \\mathrm{test}(e^*),

the epoch of best validation score among those whose cumulative training cost is within the budget (ties: the
earlier epoch), where ``c(e) = e`` (epochs), ``e * s`` (steps; ``s = train_steps_per_epoch``) or ``e * s * F``
(FLOPs; ``F = train_flops_per_step``, the analytic count of :mod:`fixpt.training.flops`). The scores are the
per-epoch evaluations of ``history.csv``. A run that stopped before spending ``B`` keeps its best epoch overall:
it had reached its plateau. The test-batch spread was measured on the final checkpoint only, so a budgeted
cell has the seed spread alone; model selection by the Jacobian penalty's feasibility is not replayed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..errors import FixptError
from ..training.rundir import RunDir
from .runs import FinishedRun

KINDS = {"epochs": "epochs", "steps": "training steps", "flops": "training FLOPs"}


@dataclass(frozen=True)
class Budget:
    kind: str  # epochs, steps or flops
    amount: float

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``steps=3000``, ``flops=2.5e15`` or ``epochs=200``."""
        kind, _, amount = text.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = math.nan
        if kind not in KINDS or not value > 0 or math.isinf(value):
            raise FixptError(f"--budget {text!r}: give KIND=AMOUNT with KIND one of {', '.join(KINDS)} and AMOUNT > 0, "
                             "e.g. --budget steps=3000")
        return cls(kind, value)

    @property
    def text(self) -> str:
        return f"{self.amount:g} {KINDS[self.kind]}"

    def cost(self, run: FinishedRun, epoch: int) -> float:
        """c(epoch) of the module docstring, from the run's metrics.json."""
        if self.kind == "epochs":
            return float(epoch)
        steps = run.metrics.get("train_steps_per_epoch")
        flops = run.metrics.get("train_flops_per_step") if self.kind == "flops" else 1.0
        if not isinstance(steps, int) or not isinstance(flops, (int, float)):
            needs = "train_steps_per_epoch" + (" and train_flops_per_step" if self.kind == "flops" else "")
            raise FixptError(f"--budget {self.kind}: run {run.id} recorded no {needs} (an older fixpt trained it); "
                             "use --budget epochs=N or rerun it")
        return float(epoch * steps * flops)


def within_budget(run: FinishedRun, metric: str, budget: Budget, higher: bool) -> tuple[FinishedRun, bool]:
    """The run scored at its best-validation epoch within ``budget`` (``test_<metric>``, ``val_<metric>`` and
    ``budget_epoch`` replaced or added), and whether it stopped before spending the budget."""
    test_key, val_key = f"test_{metric}", f"val_{metric}"
    rows = [r for r in (RunDir(run.folder).read_history() if run.folder is not None else [])
            if isinstance(r.get("epoch"), int) and all(_finite(r.get(k)) for k in (test_key, val_key))]
    if not rows:
        raise FixptError(f"--budget: run {run.id} has no history.csv with {val_key} and {test_key} per epoch; "
                         "report it without --budget")
    affordable = [r for r in rows if budget.cost(run, r["epoch"]) <= budget.amount]
    if not affordable:
        first = budget.cost(run, rows[0]["epoch"])
        raise FixptError(f"--budget {budget.kind}={budget.amount:g}: run {run.id}'s first epoch already costs {first:g} "
                         f"{KINDS[budget.kind]}; give a budget of at least that")
    sign = 1.0 if higher else -1.0
    best = max(affordable, key=lambda r: (sign * r[val_key], -r["epoch"]))
    metrics = {k: v for k, v in run.metrics.items() if k != "spread_over_test_batches"}
    metrics.update({test_key: best[test_key], val_key: best[val_key], "budget_epoch": best["epoch"]})
    stopped_early = budget.cost(run, rows[-1]["epoch"]) < budget.amount
    return replace(run, metrics=metrics), stopped_early


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
