"""Reports: a sweep directory aggregated (mean +- std over seeds) into the paper's table layouts.

Layouts (the preset's ``report`` key):

- ``table5``: rows are frameworks x backbones ("GCN", "IterGNN with GAT", "PIGN with GCN", ...),
  columns datasets x noise ("Cora", "Cora-50%", ...), accuracy in percent (paper, Table 5);
- ``table1``: rows are frameworks ("w/o iterations", "IterGNN", "PIGN"), columns backbones,
  the score as a fraction (paper, Table 1);
- ``generic``: one row per combination of the sweep's varying keys.

PIGN's rows name its form: "PIGN with GCN" is the paper's Algorithm 1 (``form: paper``), the row
the paper's numbers belong to; fixpt's fixed-point form is "PIGN (fixed-point) with GCN".

Keys that vary but are not part of the layout form a cell's *setting*, and no two settings are
ever averaged together. Where every cell of a row holds one setting (e.g. per-cell
hyper-parameters, as in ``presets/table5-paper.yaml``), each cell's setting is listed under the
table; otherwise it is appended to the row label. With ``select`` (``fixpt report --select``) the
setting is instead chosen: each cell keeps the setting with the best mean validation score (ties:
the lower mean validation loss), so the test split never chooses anything, and the chosen settings
are listed under the table.

Two protocols (``protocol``): ``best-val`` reports each run's test score at its best-validation
epoch (``test_<metric>``, fixpt's selection); ``last-epoch`` the test score after the last epoch
(``test_<metric>_last_epoch``, the paper's protocol), with ``--select`` then choosing on the
last-epoch validation score. The standard deviation is the sample one (``ddof=1``), as the paper's
"mean and standard deviation over runs".
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from .errors import FixptError
from .sweep import INDEX

BACKBONE_LABELS = {"gcn": "GCN", "gat": "GAT", "sage": "GraphSAGE"}
FRAMEWORK_LABELS = {"gnn": "w/o iterations", "itergnn": "IterGNN", "pign": "PIGN"}
DATASET_LABELS = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed", "csbm": "CSBM", "longrange": "long-range",
                  "pascalvoc-sp": "PascalVOC-SP"}
FORMATS = ("md", "latex", "csv", "json")
LOWER_IS_BETTER = ("mse",)
PROTOCOLS = ("best-val", "last-epoch")
LAST_EPOCH = "_last_epoch"  # suffix of the last-epoch protocol's keys in metrics.json
PROTOCOL_TEXT = {"best-val": "best-val epoch", "last-epoch": "last epoch"}  # when each run's test score was taken


@dataclass
class Cell:
    values: list[float]
    paper: tuple[float, float] | None = None
    seconds: list[float] = field(default_factory=list)  # training time of each run

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def std(self) -> float:
        if len(self.values) < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (len(self.values) - 1))


@dataclass
class Table:
    title: str
    metric: str
    percent: bool
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    source: str = ""  # where the paper's numbers come from, with --compare paper
    protocol: str = "best-val"
    settings: dict[tuple[str, str], str] = field(default_factory=dict)  # (row, column) -> the cell's one setting
    # with select: (row, column) -> (the chosen setting, its mean validation score, settings compared)
    selected: dict[tuple[str, str], tuple[str, float, int]] = field(default_factory=dict)
    trained: tuple[int, float] | None = None  # with select: runs and seconds of training, settings not chosen included

    def best(self, column: str) -> str | None:
        """The row with the best mean in ``column``: the highest score, or the lowest error (MSE)."""
        scored = [(self.cells[r, column].mean, r) for r in self.rows if (r, column) in self.cells]
        if not scored:
            return None
        return (min(scored) if self.metric in LOWER_IS_BETTER else max(scored))[1]


def load_runs(sweep_dir: str | Path) -> tuple[dict, list[dict]]:
    """The sweep's index and its finished runs: ``{"id", "model", "params", "metrics"}`` each."""
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
        metrics_path = d / "runs" / r["id"] / "metrics.json"
        if metrics_path.is_file() and metrics_path.with_name("config.json").is_file():
            runs.append({**r, "metrics": json.loads(metrics_path.read_text())})
    if not runs:
        raise FixptError(f"{d} has no finished runs yet ({len(planned)} planned); run or resume the sweep first")
    return index, runs


def metric_name(runs: list[dict]) -> str:
    names = sorted({k[len("test_"):] for r in runs for k in r["metrics"] if k.startswith("test_") and not k.endswith(LAST_EPOCH)})
    if len(names) != 1:
        raise FixptError(f"the runs report different test metrics ({', '.join(names)}); report one task per sweep")
    return names[0]


def _fmt_value(v: float, percent: bool) -> str:
    return f"{100 * v:.1f}" if percent else f"{v:.4f}"


def _label(run: dict, key: str) -> str | None:
    return f"{key}={run['params'][key]}" if key in run["params"] else None


def _framework(model: str, params: dict) -> str:
    """The framework's row label; PIGN's names its form (the paper's Algorithm 1 is plain "PIGN")."""
    label = FRAMEWORK_LABELS.get(model, model)
    if model == "pign" and params.get("form", "fixed-point") != "paper":
        label += " (fixed-point)"
    return label


def protocol_keys(metric: str, protocol: str) -> tuple[str, str]:
    """The metrics.json keys of the test score reported and the validation score that selects, under ``protocol``."""
    if protocol not in PROTOCOLS:
        raise FixptError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    suffix = LAST_EPOCH if protocol == "last-epoch" else ""
    return f"test_{metric}{suffix}", f"val_{metric}{suffix}"


def build_table(index: dict, runs: list[dict], layout: str | None = None, select: bool = False,
                protocol: str = "best-val") -> Table:
    """Group finished runs by everything but the seed and place the groups in ``layout``; with
    ``select``, keep in each cell only the setting chosen on validation (see the module docstring)."""
    layout = layout or index.get("report", "generic")
    metric = metric_name(runs)
    test_key, val_key = protocol_keys(metric, protocol)
    missing = [r["id"] for r in runs if test_key not in r["metrics"]]
    if missing:
        raise FixptError(f"{len(missing)} runs (e.g. {missing[0]}) did not record {test_key}: they were trained by a fixpt "
                         f"older than the {protocol} protocol; delete their folders and rerun the sweep, or use --protocol best-val")
    varying = [k for k in index.get("varying", []) if k != "seed"]
    percent = metric == "accuracy"

    def place(run: dict) -> tuple[str, str, str]:
        """(row, column, setting): the setting is the varying keys the layout does not show."""
        p, model = run["params"], run["model"]
        backbone = BACKBONE_LABELS.get(p.get("backbone", "gcn"), p.get("backbone", "gcn"))
        if layout == "table5":
            row = backbone if model == "gnn" else f"{_framework(model, p)} with {backbone}"
            noise = float(p.get("noise", 0.0))
            col = DATASET_LABELS.get(p.get("dataset", ""), p.get("dataset", "")) + (f"-{100 * noise:g}%" if noise > 0 else "")
            used = {"model", "form", "backbone", "dataset", "noise"}
        elif layout == "table1":
            row, col, used = _framework(model, p), backbone, {"model", "form", "backbone"}
        else:
            row, col, used = model, f"test {metric}", {"model"}
        extra = [label for k in varying if k not in used and (label := _label(run, k))]
        if layout == "generic" and not select:
            return " ".join(([model] if "model" in varying else []) + extra) or model, col, ""
        return row, col, ", ".join(extra)

    groups: dict[tuple[str, str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault(place(run), []).append(run)
    table = Table(title=index.get("name", ""), metric=metric, percent=percent, rows=[], columns=[], protocol=protocol)
    if select:
        groups = _select_on_validation(groups, metric, table, val_key)
    else:
        groups = _settings_per_cell(groups, table)
    for (row, col, _), members in groups.items():
        if row not in table.rows:
            table.rows.append(row)
        if col not in table.columns:
            table.columns.append(col)
        table.cells[row, col] = Cell([float(r["metrics"][test_key]) for r in members],
                                     seconds=[float(r["metrics"].get("seconds", 0.0)) for r in members])
    if select:  # every run trained counts towards the time, the settings not chosen too
        table.trained = (len(runs), sum(float(r["metrics"].get("seconds", 0.0)) for r in runs))
    if layout in ("table5", "table1"):  # the paper's order: frameworks, then backbones; datasets, then noise
        table.rows.sort(key=_paper_order)
        table.columns.sort(key=_paper_order)
    else:  # by model, then by the varying keys' values, numbers as numbers
        first = {}
        for key, members in groups.items():
            first.setdefault(key[0], members[0])
        table.rows.sort(key=lambda r: [first[r]["model"]] + [_sortable(first[r]["params"].get(k)) for k in varying])
    return table


def _settings_per_cell(groups: dict, table: Table) -> dict:
    """Rows whose every cell holds one setting keep their label (the settings go to ``table.settings``);
    in the other rows, each setting becomes a row of its own, ``"row (setting)"``."""
    per_cell: dict[tuple[str, str], int] = {}
    for row, col, _ in groups:
        per_cell[row, col] = per_cell.get((row, col), 0) + 1
    split_rows = {row for (row, _), n in per_cell.items() if n > 1}
    out = {}
    for (row, col, setting), members in groups.items():
        if row in split_rows and setting:
            out[f"{row} ({setting})", col, ""] = members
        else:
            out[row, col, ""] = members
            if setting:
                table.settings[row, col] = setting
    return out


def _select_on_validation(groups: dict, metric: str, table: Table, val_key: str) -> dict:
    """Per (row, column), the group of the setting with the best mean ``val_key`` (``val_<metric>``, or its
    last-epoch twin; ties: the lower mean ``val_loss``); records the choice in ``table.selected``."""
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    by_cell: dict[tuple[str, str], list[tuple[str, list[dict]]]] = {}
    for (row, col, setting), members in groups.items():
        by_cell.setdefault((row, col), []).append((setting, members))

    def mean_of(members: list[dict], key: str, missing: float) -> float:
        values = [float(r["metrics"][key]) for r in members if key in r["metrics"]]
        return sum(values) / len(values) if values else missing

    chosen = {}
    for (row, col), candidates in by_cell.items():
        if any(val_key not in r["metrics"] for _, members in candidates for r in members):
            raise FixptError(f"--select chooses on {val_key}, which some runs of {row} / {col} did not record")
        setting, members = max(candidates, key=lambda c: (sign * mean_of(c[1], val_key, 0.0),
                                                          -mean_of(c[1], "val_loss", 0.0)))
        chosen[row, col, setting] = members
        table.selected[row, col] = (setting, mean_of(members, val_key, 0.0), len(candidates))
    return chosen


def _sortable(value) -> tuple:
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, (int, float)):
        return (1, float(value), "")
    return (2, 0.0, str(value))


def _paper_order(label: str) -> tuple:
    words = [FRAMEWORK_LABELS["itergnn"], FRAMEWORK_LABELS["pign"]]
    framework = next((i + 1 for i, w in enumerate(words) if label.startswith(w)), 0)
    order = list(BACKBONE_LABELS.values()) + list(DATASET_LABELS.values())
    item = next((i for i, w in enumerate(order) if w in label), len(order))
    return framework, item, "%" in label, label


def paper_results() -> dict:
    return yaml.safe_load(resources.files("fixpt").joinpath("paper_results.yaml").read_text())


def attach_paper(table: Table, layout: str) -> None:
    """Put the paper's published numbers beside ours (``--compare paper``)."""
    published = paper_results()
    if layout not in published:
        raise FixptError(f"the paper publishes no numbers for the {layout!r} layout; --compare paper works with "
                         f"{', '.join(published)}")
    entry = published[layout]
    table.source = entry["source"]
    scale = 100.0 if entry["scale"] == "percent" else 1.0
    matched = 0
    for (row, col), cell in table.cells.items():
        values = entry["cells"].get(row, {}).get(col)
        if values is not None:
            cell.paper = (values[0] / scale, values[1] / scale)
            matched += 1
    if not matched:
        raise FixptError(f"no cell of this sweep matches the paper's {layout} (rows {', '.join(entry['cells'])})")


def _cell_text(table: Table, row: str, col: str, *, bold: tuple[str, str] = ("", ""), pm: str = "±") -> str:
    cell = table.cells.get((row, col))
    if cell is None:
        return "-"
    text = _fmt_value(cell.mean, table.percent)
    if cell.n > 1:  # one run has no spread to show
        text += f" {pm} {_fmt_value(cell.std, table.percent)}"
    if table.best(col) == row:
        text = f"{bold[0]}{text}{bold[1]}"
    if cell.paper is not None:
        diff = cell.mean - cell.paper[0]
        sign = "+" if diff >= 0 else "-"
        text += f" (paper {_fmt_value(cell.paper[0], table.percent)}, {sign}{_fmt_value(abs(diff), table.percent)})"
    return text


def _n_note(table: Table) -> str:
    ns = sorted({c.n for c in table.cells.values()})
    return f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"


def _selection_notes(table: Table) -> list[str]:
    """Each cell's setting: with select, the chosen one, its mean validation score and how many settings it
    beat; else the one setting a row's cell holds (see :func:`_settings_per_cell`)."""
    if table.settings:
        lines = ["", "Settings per cell:"]
        lines += [f"- {r}, {c}: {table.settings[r, c]}" for r in table.rows for c in table.columns if (r, c) in table.settings]
        return lines
    if not table.selected:
        return []
    lines = ["", "Settings chosen on validation (the best mean validation score of the settings compared):"]
    for r in table.rows:
        for c in table.columns:
            if (r, c) in table.selected:
                setting, val, compared = table.selected[r, c]
                lines.append(f"- {r}, {c}: {setting or 'the one setting'} (validation {_fmt_value(val, table.percent)}, "
                             f"best of {compared})")
    return lines


def render(table: Table, fmt: str) -> str:
    if fmt not in FORMATS:
        raise FixptError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    unit = "%" if table.percent else ""
    if fmt == "md":
        lines = [f"| {table.metric}{f' ({unit})' if unit else ''}, mean ± std over {_n_note(table)} seeds, {PROTOCOL_TEXT[table.protocol]} | "
                 + " | ".join(table.columns) + " |", "|---" * (len(table.columns) + 1) + "|"]
        for r in table.rows:
            lines.append(f"| {r} | " + " | ".join(_cell_text(table, r, c, bold=("**", "**")) for c in table.columns) + " |")
        if table.source:
            lines.append(f"\n(paper X, +-d): the published mean and our difference; source: {table.source}")
        lines += _selection_notes(table)
        runs = sum(c.n for c in table.cells.values())
        seconds = sum(sum(c.seconds) for c in table.cells.values())
        if table.trained is not None:
            runs, seconds = table.trained
        lines.append(f"\n{runs} runs, {seconds / 60:.1f} min of training in all ({seconds / max(runs, 1):.1f} s a run on average)")
        return "\n".join(lines) + "\n"
    if fmt == "latex":
        esc = lambda s: s.replace("%", r"\%").replace("_", r"\_")  # noqa: E731
        lines = [r"\begin{tabular}{l" + "c" * len(table.columns) + "}", r"\toprule",
                 " & ".join([""] + [esc(c) for c in table.columns]) + r" \\", r"\midrule"]
        for r in table.rows:
            cells = [esc(_cell_text(table, r, c, bold=(r"\textbf{", "}"), pm=r"$\pm$")) for c in table.columns]
            lines.append(" & ".join([esc(r)] + cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", f"% {table.metric}, {PROTOCOL_TEXT[table.protocol]}"]
        lines += [f"% {line}" for line in _selection_notes(table) if line]
        return "\n".join(lines) + "\n"
    records = []
    for r in table.rows:
        for c in table.columns:
            cell = table.cells.get((r, c))
            if cell is None:
                continue
            rec = {"row": r, "column": c, "metric": table.metric, "protocol": table.protocol, "mean": cell.mean, "std": cell.std, "n": cell.n,
                   "best": table.best(c) == r, "values": cell.values,
                   "seconds_mean": sum(cell.seconds) / cell.n}
            if (r, c) in table.selected:
                setting, val, compared = table.selected[r, c]
                rec.update(setting=setting, val_mean=val, settings_compared=compared)
            elif (r, c) in table.settings:
                rec.update(setting=table.settings[r, c])
            if cell.paper is not None:
                rec.update(paper_mean=cell.paper[0], paper_std=cell.paper[1], diff=cell.mean - cell.paper[0])
            records.append(rec)
    if fmt == "json":
        return json.dumps({"title": table.title, "metric": table.metric, "protocol": table.protocol, "source": table.source,
                           "cells": records}) + "\n"
    buf = io.StringIO()
    keys = ["row", "column", "metric", "protocol", "mean", "std", "n", "best", "seconds_mean", "paper_mean", "paper_std", "diff",
            "setting", "val_mean", "settings_compared"]
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()
