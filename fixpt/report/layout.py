"""What a report layout is: how a sweep's finished runs become a :class:`~fixpt.report.table.Table`,
which figures they give, and which of ``fixpt report``'s options apply to it.

A layout registers itself next to the code that knows its runs::

    @register_layout("fig2")
    class Fig2(Layout):
        paper_absent = "--compare paper: the paper shows ... as figures only; use --plot"

        def table(self, sweep, options): ...
        def figures(self, sweep, table, folder): ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .budget import Budget
from .runs import SweepRuns
from .table import Table


@dataclass(frozen=True)
class Options:
    """The options a layout's table is built with (``fixpt report --select --protocol --spread``)."""

    select: bool = False  # per cell, keep the setting chosen on validation
    protocol: str = "best-val"  # which test score of each run: at its best-validation epoch, or after the last
    spread: str = "seeds"  # the ± shown: over seeds, or over test batches of each model (mean over seeds)
    budget: Budget | None = None  # score each run at its best-validation epoch within this training cost


class Layout:
    chooses_settings = False  # whether --select and --protocol apply (a layout of validation-selected test scores)
    paper_absent = ""  # why the paper has no numbers to compare with (the --compare paper error); "" : the usual one
    no_figure = "no figure applies"  # the note when --plot finds nothing to draw

    def table(self, sweep: SweepRuns, options: Options) -> Table:
        raise NotImplementedError

    def figures(self, sweep: SweepRuns, table: Table, folder: Path) -> list[Path]:
        """Write the layout's figures into ``folder`` (which exists); returns their paths."""
        return []
