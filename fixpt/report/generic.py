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
        return Place(" ".join(([run.model] if "model" in varying else []) + labels) or run.model, column, set(varying))
