"""``fixpt report``: the command over :func:`fixpt.report.make_report`, which checks the options and builds the text."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .console import err, user_errors


@user_errors
def report(
    sweep_dir: Annotated[Path, typer.Argument(help="a directory written by `fixpt sweep`, or a run folder of `fixpt train`, "
                                              "or a folder of them (runs/): the runs compared by the settings they differ in")],
    fmt: Annotated[str, typer.Option("--format", help="md, latex, csv or json")] = "md",
    layout: Annotated[Optional[str], typer.Option("--layout", help="table5, table1, recycle, fig2 or generic (default: the preset's)")] = None,
    compare: Annotated[Optional[str], typer.Option("--compare", help="'paper': the published numbers beside ours, with the difference")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="write PNG figures into this folder")] = None,
    select: Annotated[bool, typer.Option("--select", help="per cell, keep only the setting (the varying keys the layout "
                                         "does not show) with the best mean validation score, and list the choices")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="a damaged run file is an error (exit 2), not a warning")] = False,
    protocol: Annotated[str, typer.Option("--protocol", help="best-val: test score at each run's best-validation epoch; "
                                          "last-epoch: after the last epoch (the paper's protocol)")] = "best-val",
    spread: Annotated[str, typer.Option("--spread", help="the ± shown: seeds (std over seeds) or test-batches (std over test "
                                        "batches of each model, the paper's; mean over seeds)")] = "seeds",
    budget: Annotated[Optional[str], typer.Option("--budget", help="equal compute: score each run at its best-validation epoch "
                                                  "within steps=N, flops=X or epochs=N of training (from history.csv)")] = None,
) -> None:
    """Aggregate a sweep (mean +- std over seeds) into the paper's table layout; best of each column in bold. Runs of
    `fixpt train` (a run folder, or a folder of them) get the generic layout."""
    from ..report import make_report
    from ..training.rundir import writable_folder

    if plot is not None:
        writable_folder(plot, "--plot")
    report = make_report(sweep_dir, layout=layout, fmt=fmt, compare=compare, select=select, protocol=protocol, plot=plot,
                         strict=strict, spread=spread, budget=budget)
    sys.stdout.write(report.text)
    for line in report.notes:
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    for p in report.written:
        err.print(f"wrote {p}", markup=False, highlight=False)
