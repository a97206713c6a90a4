"""Reports: a sweep directory aggregated (mean +- std over seeds) into a layout's table and figures.

    report = make_report("sweeps/table5", fmt="latex", compare="paper")
    print(report.text, end="")

A layout is registered with :func:`fixpt.registry.register_layout` next to the code that knows its
runs (the paper's tables next to their models, a family's figures in its package; ``generic``
here: one row per combination of the varying keys). Each builds one
:class:`~fixpt.report.table.Table` that :mod:`fixpt.report.render` writes as md, latex, csv or json,
and says which options apply to it (:class:`~fixpt.report.layout.Layout`). Layouts of test scores
(:mod:`fixpt.report.scores`) choose settings on validation (``select``) and take a ``protocol``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FixptError
from ..registry import LAYOUTS
from .budget import Budget
from .layout import Layout, Options
from .paper import attach_paper, paper_results
from .render import FORMATS, render
from .runs import FinishedRun, SweepRuns, load_runs
from .scores import PROTOCOLS, SPREADS, Place, ScoreLayout
from .table import Cell, Note, NumberFormat, Row, Table

__all__ = ["FORMATS", "PROTOCOLS", "Cell", "FinishedRun", "Layout", "Note", "NumberFormat", "Options", "Place", "Report", "Row",
           "ScoreLayout", "SweepRuns", "Table", "load_runs", "make_report", "paper_results", "render"]


@dataclass
class Report:
    text: str  # the table, for stdout
    notes: list[str] = field(default_factory=list)  # lines for stderr (unfinished runs, figures that do not apply)
    written: list[Path] = field(default_factory=list)  # the figures written


def make_report(sweep_dir: str | Path, *, layout: str | None = None, fmt: str = "md", compare: str | None = None,
                select: bool = False, protocol: str = "best-val", plot: str | Path | None = None, strict: bool = False,
                spread: str = "seeds", budget: str | None = None) -> Report:
    """The report of a sweep directory in ``layout`` (default: the preset's); ``compare="paper"`` puts the
    published numbers beside ours; ``plot`` is a folder for the layout's figures; ``strict`` makes a damaged run
    file an error instead of a warning; ``budget`` (``steps=N``, ``flops=X``, ``epochs=N``) scores each run at its
    best-validation epoch within that training cost (:mod:`fixpt.report.budget`). Bad input: FixptError."""
    sweep = load_runs(sweep_dir, strict=strict)
    name = layout or sweep.layout
    limit = Budget.parse(budget) if budget is not None else None
    chosen = _check_options(name, fmt, compare, select, protocol, spread, limit)
    table = chosen.table(sweep, Options(select=select, protocol=protocol, spread=spread, budget=limit))
    if compare == "paper":
        attach_paper(table, name)
    report = Report(render(table, fmt), notes=[f"warning: {why}" for why in sweep.skipped])
    if len(sweep.runs) < sweep.planned:
        report.notes.append(f"note: {len(sweep.runs)} of {sweep.planned} planned runs are finished; the table covers those")
    if plot is not None:
        Path(plot).mkdir(parents=True, exist_ok=True)
        report.written = chosen.figures(sweep, table, Path(plot))
        if not report.written:
            report.notes.append(chosen.no_figure)
    return report


def _check_options(name: str, fmt: str, compare: str | None, select: bool, protocol: str, spread: str = "seeds",
                   budget: Budget | None = None) -> Layout:
    """The layout called ``name``, once every option is known and applies to it."""
    if name not in LAYOUTS:
        raise FixptError(f"unknown layout {name!r}; valid: {', '.join(LAYOUTS.names())}")
    if fmt not in FORMATS:
        raise FixptError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    if compare not in (None, "paper"):
        raise FixptError(f"--compare {compare!r}: the only reference is 'paper'")
    if protocol not in PROTOCOLS:
        raise FixptError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if spread not in SPREADS:
        raise FixptError(f"unknown spread {spread!r}; valid: {', '.join(SPREADS)}")
    if spread != "seeds" and protocol != "best-val":
        raise FixptError("--spread test-batches is measured on each run's best-validation model; use --protocol best-val")
    if budget is not None and (protocol != "best-val" or spread != "seeds"):
        raise FixptError("--budget picks each run's best-validation epoch within the budget from its history, where only the "
                         "seed spread exists; drop --protocol and --spread")
    chosen = LAYOUTS.get(name)()
    if not chosen.chooses_settings:
        choosing = _and([n for n in LAYOUTS.names() if LAYOUTS.get(n).chooses_settings])
        if protocol != "best-val":
            raise FixptError(f"--protocol {protocol} applies to the {choosing} layouts, not to {name}")
        if select:
            raise FixptError(f"--select chooses settings in the {choosing} layouts, not in {name}")
        if spread != "seeds":
            raise FixptError(f"--spread {spread} applies to the {choosing} layouts, not to {name}")
        if budget is not None:
            raise FixptError(f"--budget applies to the {choosing} layouts, not to {name}")
    if compare is not None and chosen.paper_absent:
        raise FixptError(chosen.paper_absent)
    return chosen


def _and(names: list[str]) -> str:
    """``a, b and c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
