"""The ``generic`` layout: one row per combination of the sweep's varying keys, one column (the test score).

With ``--select``, one row per model instead, each keeping the setting chosen on validation.
"""

from __future__ import annotations

from ..registry import register_layout
from .layout import Options
from .runs import FinishedRun
from .scores import Place, ScoreLayout, setting_label


@register_layout("generic")
class Generic(ScoreLayout):
    def place(self, run: FinishedRun, metric: str, varying: list[str], options: Options) -> Place:
        column = f"test {metric}"
        if options.select:
            return Place(run.model, column, {"model"})
        labels = [label for k in varying if k != "model" and (label := setting_label(run, k))]
        # a run that sets none of the varying keys (the base of an ablation) runs the model's defaults for them
        row = " ".join(([run.model] if "model" in varying else []) + labels) or (f"{run.model} (defaults)" if varying else run.model)
        return Place(row, column, set(varying))
