"""One renderer per format for a :class:`~fixpt.report.table.Table`: Markdown, LaTeX, CSV and JSON.

Markdown and LaTeX show each cell as ``mean ± std`` (a single value without its spread, a cell with
no value as ``-``), the best of each column in bold and, with ``--compare paper``, the published
mean and our difference. CSV and JSON write one record per cell: the fields that name its row, the
column, the table's fields, ``mean``, ``std``, ``n``, ``best`` where the table ranks its rows, the
cell's own fields and the paper's numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from .table import Row, Table

FORMATS = ("md", "latex", "csv", "json")


def render(table: Table, fmt: str) -> str:
    """``table`` as text in ``fmt`` (one of :data:`FORMATS`)."""
    return {"md": markdown, "latex": latex, "csv": csv_text, "json": json_text}[fmt](table)


def latex_escape(text: str) -> str:
    return text.replace("%", r"\%").replace("_", r"\_")


def cell_text(table: Table, row: Row, column: str, *, bold: tuple[str, str] = ("", ""), pm: str = "±") -> str:
    """What a cell shows: a text column's text, or ``mean ± std`` with the best in bold and the paper's mean."""
    if column in row.text:
        return row.text[column]
    cell = row.cells.get(column)
    if cell is None or not cell.values:
        return "-"
    number = table.number
    text = number(cell.mean)
    if len(cell.values) > 1 or cell.spread is not None or number.spread_of_one:  # one run has no spread over seeds to show
        text += f" {pm} {number(cell.std)}"
    if table.best(column) == row.label:
        text = f"{bold[0]}{text}{bold[1]}"
    if cell.paper is not None:
        diff = cell.mean - cell.paper[0]
        sign = "+" if diff >= 0 else "-"
        text += f" (paper {number(cell.paper[0])}, {sign}{number(abs(diff))})"
    return text


def markdown(table: Table) -> str:
    head = [table.corner] + table.columns
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row in table.rows:
        cells = [cell_text(table, row, c, bold=("**", "**")) for c in table.columns]
        lines.append("| " + " | ".join([row.label] + cells) + " |")
    if table.source:
        lines += ["", f"(paper X, +-d): the published mean and our difference; source: {table.source}"]
    for note in table.notes:
        if note.md:
            lines += [""] + note.lines
    return "\n".join(lines) + "\n"


def latex(table: Table) -> str:
    head = [table.corner if table.corner_latex is None else table.corner_latex] + table.columns
    lines = [r"\begin{tabular}{l" + "c" * (len(head) - 1) + "}", r"\toprule", " & ".join(map(latex_escape, head)) + r" \\",
             r"\midrule"]
    for row in table.rows:
        cells = [cell_text(table, row, c, bold=(r"\textbf{", "}"), pm=r"$\pm$") for c in table.columns]
        lines.append(" & ".join(map(latex_escape, [row.label] + cells)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [f"% {line}" for note in table.notes if note.latex for line in note.lines]
    return "\n".join(lines) + "\n"


def records(table: Table) -> list[dict[str, Any]]:
    """One record per cell, row by row."""
    out = []
    for row in table.rows:
        for column in table.columns:
            cell = row.cells.get(column)
            if cell is None:
                continue
            rec = {**row.names(), "column": column, **table.fields, "mean": cell.mean, "std": cell.std, "n": cell.n}
            if table.higher_is_better is not None:
                rec["best"] = table.best(column) == row.label
            rec.update(cell.fields)
            if cell.paper is not None:
                rec.update(paper_mean=cell.paper[0], paper_std=cell.paper[1], diff=cell.mean - cell.paper[0])
            rec.update(row.tail)
            out.append(rec)
    return out


def json_text(table: Table) -> str:
    """JSON, NaN (a cell with no value) written as null."""
    cells = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in rec.items()} for rec in records(table)]
    if table.json_document:
        return json.dumps({"title": table.title, **table.fields, "source": table.source, "cells": cells}) + "\n"
    return json.dumps(cells) + "\n"


def csv_text(table: Table) -> str:
    rows = records(table)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=table.csv_columns or (list(rows[0]) if rows else []), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
