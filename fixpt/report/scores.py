"""Layouts of one test score per cell: runs grouped by everything but the seed, each group placed at a
(row, column) by the layout, mean +- std over its seeds, the best of each column in bold.

Keys that vary but are not shown by the row or the column form a cell's *setting*, and no two
settings are ever averaged together. Where every cell of a row holds one setting (e.g. per-cell
hyper-parameters, as in ``fixpt/presets/table5-paper.yaml``), each cell's setting is listed under the
table; otherwise it is appended to the row label. With ``select`` (``fixpt report --select``) the
setting is instead chosen: each cell keeps the setting with the best mean validation score (ties:
the lower mean validation loss), so the test split never chooses anything, and the chosen settings
are listed under the table. Which score is better comes from the runs' task.

Two protocols (``protocol``): ``best-val`` reports each run's test score at its best-validation
epoch (``test_<metric>``, fixpt's selection); ``last-epoch`` the test score after the last epoch
(``test_<metric>_last_epoch``, the paper's protocol), with ``--select`` then choosing on the
last-epoch validation score. The standard deviation is the sample one (``ddof=1``), as the paper's
"mean and standard deviation over runs".

The ± (``spread``) is the spread over seeds by default. With ``--spread test-batches`` it is the spread over
test batches of one trained model (the paper's ±; ``spread_over_test_batches["<metric>_std"]`` in the runs'
``metrics.json``, which tasks that record it write), averaged over the cell's seeds; every cell's CSV / JSON record carries both,
``seed_std`` and ``test_batch_std``, whichever is shown.

Where the runs' task scores predictors that need no training (``references`` in ``metrics.json``), they
follow as unranked rows ``reference: <name>`` (:mod:`fixpt.report.references`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from ..errors import FixptError
from ..plots import plot_residuals, plot_score_vs_iterations
from .budget import within_budget
from .curves import curves_figure
from .layout import Layout, Options
from .references import add_reference_rows
from .runs import FinishedRun, SweepRuns, higher_is_better, setting_label
from .table import Cell, Note, NumberFormat, Table

PROTOCOLS = ("best-val", "last-epoch")
SPREADS = ("seeds", "test-batches")
LAST_EPOCH = "_last_epoch"  # suffix of the last-epoch protocol's keys in metrics.json
PROTOCOL_TEXT = {"best-val": "best-val epoch", "last-epoch": "last epoch"}  # when each run's test score was taken
CSV_COLUMNS = ["row", "column", "metric", "protocol", "budget", "mean", "std", "n", "best", "seconds_mean", "paper_mean", "paper_std",
               "diff", "setting", "val_mean", "settings_compared", "reference", "seed_std", "test_batch_std", "budget_epochs"]


class Place(NamedTuple):
    row: str
    column: str
    shown: set[str]  # the keys the row and column show; the other varying keys form the cell's setting


class Group(NamedTuple):
    """The runs of one cell, after the settings are settled: the setting and, with select, how it was chosen."""

    runs: list[FinishedRun]
    setting: str
    chosen: tuple[float, int] | None = None  # with select: its mean validation score, how many settings were compared


class ScoreLayout(Layout):
    """A layout of test scores; a subclass says where a run goes (:meth:`place`) and in which order rows and
    columns stand."""

    chooses_settings = True
    no_figure = "no figure applies: max_iter does not vary and no run recorded a residual trace or a history"

    def place(self, run: FinishedRun, metric: str, varying: list[str], options: Options) -> Place:
        raise NotImplementedError

    def row_order(self, label: str, first: FinishedRun, varying: list[str]) -> Any:
        """By model, then by the varying keys' values (numbers as numbers) of the row's first run."""
        return [first.model] + [_sortable(first.params.get(k)) for k in varying]

    def column_order(self, label: str) -> Any:
        return 0  # the order of appearance

    def table(self, sweep: SweepRuns, options: Options) -> Table:
        return score_table(self, sweep, options)

    def figures(self, sweep: SweepRuns, table: Table, folder: Path) -> list[Path]:
        """Score against max_iter, the residual traces (see :mod:`fixpt.plots`) and test score against training steps
        and FLOPs (:mod:`fixpt.report.curves`), where they apply."""
        metric = table.fields["metric"]
        return [p for p in (plot_score_vs_iterations(sweep.runs, metric, sweep.varying, folder / "score_vs_iterations.png"),
                            plot_residuals(sweep.runs, sweep.varying, folder / "residuals.png"),
                            curves_figure(sweep.runs, metric, sweep.varying, folder / "test_vs_compute.png")) if p is not None]


def metric_name(runs: list[FinishedRun]) -> str:
    names = sorted({k[len("test_"):] for r in runs for k in r.metrics if k.startswith("test_") and not k.endswith(LAST_EPOCH)})
    if len(names) != 1:
        raise FixptError(f"the runs report different test metrics ({', '.join(names)}); report one task per sweep")
    return names[0]


def protocol_keys(metric: str, protocol: str) -> tuple[str, str]:
    """The metrics.json keys of the test score reported and the validation score that selects, under ``protocol``."""
    suffix = LAST_EPOCH if protocol == "last-epoch" else ""
    return f"test_{metric}{suffix}", f"val_{metric}{suffix}"


def score_table(layout: ScoreLayout, sweep: SweepRuns, options: Options) -> Table:
    """Group the finished runs by everything but the seed, settle each cell's setting, and fill the table."""
    runs, protocol = sweep.runs, options.protocol
    metric = metric_name(runs)
    higher = higher_is_better(runs)
    fields = {"metric": metric, "protocol": protocol}
    stopped_early = 0
    if options.budget is not None:  # each run at its best-validation epoch within the budget (fixpt.report.budget)
        scored = [within_budget(r, metric, options.budget, higher) for r in runs]
        runs, stopped_early = [r for r, _ in scored], sum(early for _, early in scored)
        fields["budget"] = options.budget.text
    test_key, val_key = protocol_keys(metric, protocol)
    missing = [r.id for r in runs if test_key not in r.metrics]
    if missing:
        raise FixptError(f"{len(missing)} runs (e.g. {missing[0]}) did not record {test_key}: they were trained by a fixpt "
                         f"older than the {protocol} protocol; delete their folders and rerun the sweep, or use --protocol best-val")
    varying = [k for k in sweep.varying if k != "seed"]
    groups: dict[tuple[str, str, str], list[FinishedRun]] = {}
    for run in runs:
        row, column, shown = layout.place(run, metric, varying, options)
        setting = ", ".join(label for k in varying if k not in shown and (label := setting_label(run, k)))
        groups.setdefault((row, column, setting), []).append(run)
    cells = select_on_validation(groups, higher, val_key) if options.select else settings_per_cell(groups)
    percent = metric == "accuracy"
    table = Table(columns=[], title=sweep.name, number=NumberFormat(100.0, 1) if percent else NumberFormat(),
                  corner_latex="", fields=fields, higher_is_better=higher,
                  json_document=True, csv_columns=CSV_COLUMNS)
    first: dict[str, FinishedRun] = {}
    seconds = []
    for (row, column), group in cells.items():
        first.setdefault(row, group.runs[0])
        if column not in table.columns:
            table.columns.append(column)
        seconds.append([float(r.metrics.get("seconds", 0.0)) for r in group.runs])
        table.row(row).cells[column] = _cell(group, test_key, seconds[-1], options.spread)
    table.rows.sort(key=lambda r: layout.row_order(r.label, first[r.label], varying))
    table.columns.sort(key=layout.column_order)
    if options.select:  # every run trained counts towards the time, the settings not chosen too
        trained = (len(runs), sum(float(r.metrics.get("seconds", 0.0)) for r in runs))
    else:
        trained = (sum(len(s) for s in seconds), sum(sum(s) for s in seconds))
    _add_notes(table, " (%)" if percent else "", trained, options.spread)
    if stopped_early:
        table.notes.append(Note([f"{stopped_early} of {len(runs)} runs stopped before spending the budget; each counts with its "
                                 "best-validation epoch overall"]))
    add_reference_rows(table, layout, sweep, options, metric, varying)
    return table


def _cell(group: Group, test_key: str, seconds: list[float], spread: str = "seeds") -> Cell:
    values = [float(r.metrics[test_key]) for r in group.runs]
    fields: dict[str, Any] = {"values": values, "seconds_mean": sum(seconds) / len(seconds), "seed_std": Cell(values).std}
    batch_stds = [batch_std(r, test_key) for r in group.runs]
    if None not in batch_stds:
        fields["test_batch_std"] = sum(batch_stds) / len(batch_stds)
    elif spread == "test-batches":
        run = group.runs[batch_stds.index(None)]
        raise FixptError(f"--spread test-batches: run {run.id} recorded no spread of {test_key} over test batches (its task "
                         "records none, or an older fixpt trained it); use --spread seeds or rerun the sweep")
    if all("budget_epoch" in r.metrics for r in group.runs):
        fields["budget_epochs"] = [r.metrics["budget_epoch"] for r in group.runs]
    if group.chosen is not None:
        fields.update(setting=group.setting, val_mean=group.chosen[0], settings_compared=group.chosen[1])
    elif group.setting:
        fields.update(setting=group.setting)
    return Cell(values, fields=fields, spread=fields["test_batch_std"] if spread == "test-batches" else None)


def batch_std(run: FinishedRun, test_key: str) -> float | None:
    """The run's std of ``test_<metric>`` over test batches (``metrics.json``'s ``spread_over_test_batches``), or None."""
    spread = run.metrics.get("spread_over_test_batches")
    value = spread.get(f"{test_key[len('test_'):]}_std") if isinstance(spread, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def settings_per_cell(groups: dict[tuple[str, str, str], list[FinishedRun]]) -> dict[tuple[str, str], Group]:
    """Rows whose every cell holds one setting keep their label (the setting is listed per cell); in the
    other rows, each setting becomes a row of its own, ``"row (setting)"``."""
    per_cell: dict[tuple[str, str], int] = {}
    for row, col, _ in groups:
        per_cell[row, col] = per_cell.get((row, col), 0) + 1
    split_rows = {row for (row, _), n in per_cell.items() if n > 1}
    out = {}
    for (row, col, setting), members in groups.items():
        if row in split_rows and setting:
            out[f"{row} ({setting})", col] = Group(members, "")
        else:
            out[row, col] = Group(members, setting)
    return out


def select_on_validation(groups: dict[tuple[str, str, str], list[FinishedRun]], higher: bool, val_key: str) -> dict[tuple[str, str], Group]:
    """Per (row, column), the group of the setting with the best mean ``val_key`` (``val_<metric>``, or its
    last-epoch twin; ties: the lower mean ``val_loss``)."""
    sign = 1.0 if higher else -1.0
    by_cell: dict[tuple[str, str], list[tuple[str, list[FinishedRun]]]] = {}
    for (row, col, setting), members in groups.items():
        by_cell.setdefault((row, col), []).append((setting, members))

    def mean_of(members: list[FinishedRun], key: str) -> float:
        values = [float(r.metrics[key]) for r in members if key in r.metrics]
        return Cell(values).mean if values else 0.0

    chosen = {}
    for (row, col), candidates in by_cell.items():
        if any(val_key not in r.metrics for _, members in candidates for r in members):
            raise FixptError(f"--select chooses on {val_key}, which some runs of {row} / {col} did not record")
        setting, members = max(candidates, key=lambda c: (sign * mean_of(c[1], val_key), -mean_of(c[1], "val_loss")))
        chosen[row, col] = Group(members, setting, (mean_of(members, val_key), len(candidates)))
    return chosen


def _add_notes(table: Table, unit: str, trained: tuple[int, float], spread: str = "seeds") -> None:
    """The caption (in the corner; in LaTeX a comment), each cell's setting, and the training time: ``trained`` is
    (runs, seconds)."""
    metric, when = table.fields["metric"], PROTOCOL_TEXT[table.fields["protocol"]]
    if "budget" in table.fields:
        when = f"{when} within {table.fields['budget']}"
    ns = sorted({cell.n for row in table.rows for cell in row.cells.values()})
    count = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
    seeds = f"{count} seed{'' if ns == [1] else 's'}"
    if spread == "test-batches":
        table.corner = f"{metric}{unit}, mean over {seeds} ± std over test batches (mean over the seeds), {when}"
    else:
        table.corner = f"{metric}{unit}, mean ± std over {seeds}, {when}"
    table.notes.append(Note([f"{metric}, {when}"], md=False))
    settings = _settings_note(table)
    if settings:
        table.notes.append(Note(settings))
    runs, seconds = trained
    table.notes.append(Note([f"{runs} run{'' if runs == 1 else 's'}, {seconds / 60:.1f} min of training in all ({seconds / max(runs, 1):.1f} s a run on average)"],
                            latex=False))


def _settings_note(table: Table) -> list[str]:
    """Each cell's setting: with select, the chosen one, its mean validation score and how many settings it
    beat; else the one setting a row's cell holds (see :func:`settings_per_cell`)."""
    cells = [(row.label, col, row.cells[col].fields) for row in table.rows for col in table.columns if col in row.cells]
    if any("settings_compared" in f for _, _, f in cells):
        return ["Settings chosen on validation (the best mean validation score of the settings compared):"] + [
            f"- {r}, {c}: {f['setting'] or 'the one setting'} (validation {table.number(f['val_mean'])}, best of {f['settings_compared']})"
            for r, c, f in cells]
    listed = [f"- {r}, {c}: {f['setting']}" for r, c, f in cells if "setting" in f]
    return ["Settings per cell:"] + listed if listed else []


def _sortable(value) -> tuple:
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, (int, float)):
        return (1, float(value), "")
    return (2, 0.0, str(value))
