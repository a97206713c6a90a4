"""Views: what ``fixpt iterate`` and ``fixpt check-contraction`` do with a trained model.

A model family registers a :class:`View` with its model (:func:`fixpt.register`). A view declares the
options of each command as a dataclass (the CLI turns every field into an option, as ``train`` does
with configs) and returns a :class:`ViewResult`, which the CLI renders without knowing the family:
``data`` is the ``--json`` output, ``tables`` and ``notes`` the terminal output, ``ok`` the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import FixptError


@dataclass
class TextTable:
    """A table for the terminal: a title, column names (right-aligned unless listed in ``left``) and rows of text."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    left: tuple[str, ...] = ()


@dataclass
class PowerIterationOptions:
    """The options every contraction check shares: the threshold of the verdict and the power iteration."""

    samples: int = field(default=8, metadata={"min": 1, "help": "points where the Jacobian norm is measured"})
    threshold: float = field(default=1.0, metadata={"above": 0, "help": "contractive means below this"})
    iters: int = field(default=100, metadata={"min": 1, "help": "power-iteration steps per point"})
    seed: int = field(default=0, metadata={"min": 0, "help": "seed of the random start vectors and pairs"})


@dataclass
class ViewResult:
    data: dict  # the --json output
    tables: list[TextTable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # lines after the tables (rich markup allowed)
    ok: bool = True  # False: the command exits 1 (diverged, not contractive)


@dataclass
class Trained:
    """A trained model rebuilt from its checkpoint with its exact inputs (:func:`fixpt.train.load_trained`)."""

    path: Any
    spec: Any
    task: Any
    model: Any
    data: Any
    data_config: Any
    checkpoint: dict

    @property
    def metric(self):
        return self.task.metric_for(self.data_config)


class View:
    """A family's meaning of ``iterate`` and ``check-contraction``. ``iterate_options`` / ``contraction_options`` are
    option dataclasses (every view's contraction options extend :class:`PowerIterationOptions`); ``check_*``
    validate options before the (possibly slow) model and data are built; ``iterate`` may report long work
    through ``progress``."""

    name: str = ""
    iterate_options: type
    contraction_options: type

    def check_iterate(self, opts) -> None:
        """Reject bad options before anything is loaded (a FixptError)."""

    def check_contraction(self, opts) -> None:
        """Reject bad options before anything is loaded (a FixptError)."""
        if opts.samples < 1:
            raise FixptError("--samples must be >= 1")

    def iterate(self, trained: Trained, opts, progress: Callable[[str, int, str], Callable[[], None]] | None = None) -> ViewResult:
        """``progress(description, total, stats)`` starts a progress bar and returns its advance-by-one callable."""
        raise NotImplementedError

    def contraction(self, trained: Trained, opts) -> ViewResult:
        raise NotImplementedError
