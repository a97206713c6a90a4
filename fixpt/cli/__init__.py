"""The ``fixpt`` command line (:mod:`fixpt.cli.root`). ``main`` is the program; ``app`` (the Typer app) is built
on first use, so importing this package loads no model family."""

from __future__ import annotations

import warnings


def main() -> None:
    """The ``fixpt`` program. torch's deprecation notice for ``torch.jit.script`` (which PyG calls at import, and
    torch on the first forward-mode derivative) means nothing to our users: the program, not the library, hides it."""
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    from .root import app

    app()


def __getattr__(name: str):
    if name == "app":
        from .root import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "main"]
