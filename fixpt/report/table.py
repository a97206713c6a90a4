"""The one table model of ``fixpt report``: rows of cells, each cell a mean and sample standard
deviation over runs, plus the notes printed under the table.

Every layout builds a :class:`Table`; :mod:`fixpt.report.render` writes it as Markdown, LaTeX, CSV
or JSON. What differs between layouts is data here (which columns hold text, how numbers print,
which fields name a row in CSV and JSON), never a branch in a renderer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Cell:
    """The values of one (row, column) over runs: mean and sample standard deviation (``ddof=1``, the
    paper's "mean and standard deviation over runs"; 0 for one value, NaN for none)."""

    values: list[float]
    runs: int | None = None  # how many runs the cell covers where some lack the value (None: one value a run)
    paper: tuple[float, float] | None = None  # the published (mean, std), with --compare paper
    fields: dict[str, Any] = field(default_factory=dict)  # more fields of the cell's CSV / JSON record
    spread: float | None = None  # the ± shown, where it is not the std of the values (e.g. over test batches)

    @property
    def n(self) -> int:
        return len(self.values) if self.runs is None else self.runs

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        if self.spread is not None:
            return self.spread
        if len(self.values) < 2:
            return 0.0 if self.values else math.nan
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (len(self.values) - 1))


@dataclass
class Row:
    """One row: its label (the first column), its cells by column, and the columns that hold text."""

    label: str
    cells: dict[str, Cell] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)  # columns that show text (a count, a group), not a statistic
    fields: dict[str, Any] | None = None  # what names the row in CSV / JSON records (None: {"row": label})
    tail: dict[str, Any] = field(default_factory=dict)  # fields that end each of the row's records
    ranked: bool = True  # whether the row competes for "best" (False: a reference row, e.g. a predictor needing no training)

    def names(self) -> dict[str, Any]:
        return {"row": self.label} if self.fields is None else self.fields


@dataclass(frozen=True)
class NumberFormat:
    """How a table prints its numbers: ``scale`` (100 for percent) and ``decimals``."""

    scale: float = 1.0
    decimals: int = 4
    spread_of_one: bool = False  # print "± 0" after a single value too (else a single value shows no spread)

    def __call__(self, value: float) -> str:
        return f"{self.scale * value:.{self.decimals}f}"


@dataclass
class Note:
    """Lines under the table, in Markdown (after a blank line) and as LaTeX comments, where wanted."""

    lines: list[str]
    md: bool = True
    latex: bool = True


@dataclass
class Table:
    columns: list[str]  # every column after the row labels, statistic and text ones, in order
    rows: list[Row] = field(default_factory=list)
    number: NumberFormat = NumberFormat()
    corner: str = ""  # the header over the row labels
    corner_latex: str | None = None  # the same in LaTeX, where it differs
    title: str = ""
    fields: dict[str, Any] = field(default_factory=dict)  # fields of every record (after "column"), e.g. the metric
    higher_is_better: bool | None = None  # marks each column's best row (None: no best is marked)
    source: str = ""  # where the paper's numbers come from, with --compare paper
    notes: list[Note] = field(default_factory=list)
    json_document: bool = False  # JSON: {"title", fields, "source", "cells": records} rather than the bare records
    csv_columns: list[str] | None = None  # the CSV header (None: the first record's fields)

    def row(self, label: str) -> Row:
        """The row labelled ``label``, added at the end if new."""
        for row in self.rows:
            if row.label == label:
                return row
        self.rows.append(Row(label))
        return self.rows[-1]

    def best(self, column: str) -> str | None:
        """The label of the row with the best mean in ``column`` (see ``higher_is_better``)."""
        scored = [(row.cells[column].mean, row.label) for row in self.rows if column in row.cells and row.ranked]
        if self.higher_is_better is None or not scored:
            return None
        return (max(scored) if self.higher_is_better else min(scored))[1]
