"""The ``fixpt`` command line (:mod:`fixpt.cli.app`)."""

from .app import app, main

__all__ = ["app", "main"]
