"""The ``fixpt`` command line: the root app composed from one module per command group, plus the commands
the registered families contribute (:func:`fixpt.registry.register_commands`).

Exit codes: 0 ok, 1 the check asked for failed (e.g. not contractive), 2 bad input (one line on
stderr, no traceback).
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .. import __version__
from ..registry import COMMANDS, load_builtins
from . import report, sweep
from .console import out
from .train import add_train_commands
from .views import add_view_commands


def _version(value: bool) -> None:
    if value:
        out.print(f"fixpt {__version__}")
        raise typer.Exit()


def make_app() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      help="Neural networks as fixed-point operators: train, iterate and check contraction.")

    @app.callback()
    def main_options(version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                                      help="print the version and exit")] = None) -> None:
        """fixpt: z* = P(z*), P(z) = T(z) + f, solved by damped Picard or Anderson iteration."""

    load_builtins()
    add_train_commands(app)
    add_view_commands(app)
    app.command("sweep")(sweep.sweep)
    app.command("report")(report.report)
    for add in COMMANDS:
        add(app)
    return app


app = make_app()


__all__ = ["app", "make_app"]
