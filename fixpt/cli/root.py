"""The ``fixpt`` command line: the root app composed from one module per command group, plus the commands
the registered families contribute (:func:`fixpt.registry.register_commands`).

``train``, ``iterate`` and ``check-contraction`` take their options from the registered families, so they are
*deferred*: the root lists them by name and help, and builds them (importing the families: torch, PyG, timm,
diffusers, gemmi) only when one of them runs or shows its help. ``fixpt --help`` and ``fixpt --version``
import none of those libraries (``tests/test_install.py`` checks it).

Exit codes: 0 ok, 1 the check asked for failed (not contractive, not converged, a flagged trajectory, a
failed sweep run), 2 bad input (one line on stderr, no traceback).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Callable, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from ..registry import COMMANDS, load_commands
from ..version import __version__
from . import report, sweep, train, views
from .console import out


def _version(value: bool) -> None:
    if value:
        out.print(f"fixpt {__version__}")
        raise typer.Exit()


@dataclass(frozen=True)
class Deferred:
    """A command built when it is used: its name and help for the root's list, and ``add``, which adds it
    (with others, perhaps) to a Typer app."""

    name: str
    help: str
    add: Callable[[typer.Typer], None]

    def placeholder(self) -> TyperCommand:
        return TyperCommand(self.name, help=self.help)

    def build(self):
        app = typer.Typer()
        self.add(app)
        return typer.main.get_group(app).commands[self.name]


DEFERRED = (
    Deferred("train", train.TRAIN_HELP, train.add_train_commands),
    Deferred("iterate", views.ITERATE_HELP, views.add_view_commands),
    Deferred("check-contraction", views.CONTRACTION_HELP, views.add_view_commands),
)


class RootGroup(TyperGroup):
    """The root: the deferred commands first (placeholders until one runs), then the others."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.commands = {**{d.name: d.placeholder() for d in DEFERRED}, **self.commands}
        self.unbuilt = {d.name: d for d in DEFERRED}

    def resolve_command(self, ctx, args):
        if args and args[0] in self.unbuilt:
            self.commands[args[0]] = self.unbuilt.pop(args[0]).build()
        return super().resolve_command(ctx, args)


def make_app() -> typer.Typer:
    app = typer.Typer(cls=RootGroup, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      help="Neural networks as fixed-point operators: train, iterate and check contraction.")

    @app.callback()
    def main_options(version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                                      help="print the version and exit")] = None) -> None:
        """fixpt: z* = P(z*), P(z) = T(z) + f, solved by damped Picard or Anderson iteration."""

    app.command("sweep")(sweep.sweep)
    app.command("report")(report.report)
    load_commands()
    for add in COMMANDS:
        add(app)
    return app


app = make_app()


__all__ = ["app", "make_app"]
