"""The CLI's leaf: consoles, JSON output, the one-line error rule, progress bars, options from dataclasses
and the rendering of :class:`~fixpt.views.base.TextTable`. Family commands import this module, never
the app."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import typing
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..errors import FixptError

out = Console()
err = Console(stderr=True)

DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON on stdout")]


TRACKER_HELP = ("none, tensorboard or mlflow: send each run's configs, per-epoch metrics, final metrics and checkpoint "
                "there (pip install 'fixpt[tensorboard]' or 'fixpt[mlflow]'); history.csv is written in any case")
TRACKER_URI_HELP = ("tensorboard: the folder for the runs' event files (default: tensorboard/ in each run folder); "
                    "mlflow: the tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's own)")
TrackerOpt = Annotated[str, typer.Option("--tracker", help=TRACKER_HELP)]
TrackerUriOpt = Annotated[str, typer.Option("--tracker-uri", help=TRACKER_URI_HELP)]


def tracker_options() -> list[inspect.Parameter]:
    """``--tracker`` and ``--tracker-uri`` as keyword-only parameters (for commands built from a signature)."""
    kw = inspect.Parameter.KEYWORD_ONLY
    return [inspect.Parameter("tracker", kw, annotation=str, default=typer.Option("none", "--tracker", help=TRACKER_HELP)),
            inspect.Parameter("tracker_uri", kw, annotation=str, default=typer.Option("", "--tracker-uri", help=TRACKER_URI_HELP))]


def tracker_spec(kind: str, uri: str, experiment: str):
    """The checked :class:`fixpt.tracking.TrackerSpec` (a missing library or store is a one-line error, before any work)."""
    from ..tracking import TrackerSpec

    return TrackerSpec(kind, uri, experiment).check()


def _finite_or_null(value):
    """JSON has no inf or NaN: report them as null so strict parsers (jq, JSON.parse) accept the output."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    return value


def print_json(result: dict) -> None:
    print(json.dumps(_finite_or_null(result), allow_nan=False))


def user_errors(fn):
    """Turn a :class:`FixptError` into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FixptError as e:
            err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)  # user text is not markup
            raise typer.Exit(2) from None

    return wrapper


def progress_bar(enabled: bool) -> Progress:
    """A bar with a description, count, free-text ``stats`` field, elapsed and remaining time, on stderr."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=not enabled, transient=False)


def option_of(f: dataclasses.Field, typ, help_text: str | None = None) -> inspect.Parameter:
    """A keyword-only Typer option ``--field-name`` for a dataclass field (a flag pair for booleans)."""
    help_text = f.metadata.get("help", "") if help_text is None else help_text
    if "choices" in f.metadata:
        help_text += f" (one of: {', '.join(map(str, f.metadata['choices']))})"
    flag = "--" + f.name.replace("_", "-")
    decls = [f"{flag}/--no-{f.name.replace('_', '-')}"] if typ in (bool, Optional[bool]) else [flag]
    # a help text is plain text: escaped, or rich would take "[default: the model's]" for markup and drop it
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=typer.Option(f.default, *decls, help=escape(help_text)),
                             annotation=typ)


def options_of(cls: type) -> list[inspect.Parameter]:
    """One option per field of the dataclass ``cls``, with the field's help."""
    hints = typing.get_type_hints(cls)
    return [option_of(f, hints[f.name]) for f in dataclasses.fields(cls)]


def with_signature(command, params: list[inspect.Parameter]):
    """Give ``command(**kw)`` the signature Typer reads its options from."""
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


def render_table(t) -> Table:
    """A :class:`~fixpt.views.base.TextTable` as a rich table."""
    table = Table(title=t.title)
    for col in t.columns:
        table.add_column(col, justify="left" if col in t.left else "right")
    for row in t.rows:
        table.add_row(*row)
    return table
