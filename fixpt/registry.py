"""The registries: a decorator and a dict each (after timm's ``_registry.py``).

A model family registers everything the commands need, so no command knows any family:

    @register("pign", config=PIGNConfig, task="node-classification")
    class PIGN(IterativeModel): ...

- ``register(name, config=, task=, view=, example=)``: a model, its typed config, the tasks it serves,
  the *view* ``iterate`` / ``check-contraction`` take of it (:mod:`fixpt.views`) and its smallest run;
- ``register_task``: a :class:`fixpt.tasks.Task`: its data, loss, metric, training loop (``fit``) and the
  runner of one sweep point (``run_point``: train it, or run and score it);
- ``register_layout``: a ``fixpt report`` layout;
- ``register_commands``: a family's own commands (``fixpt data ...``, ``fixpt recycle ...``), added to
  the CLI when it starts (from a module of :data:`COMMAND_MODULES`, which must import nothing heavy, or from
  a plugin's family module).

Every iterative model exposes the three pieces of the fixed-point view,

    f = model.encode(batch)          # the free term, also the first iterate z0
    Pz = model.step(z, f, batch)     # P(z) = T(z) + f
    out = model.decode(z, batch)

plus ``model.solver_options()`` (method, alpha, tol, max_iter, batched) and
``model.certified_lipschitz(batch)`` (a proven bound on Lip(T), or None and why).
"""

from __future__ import annotations

import fnmatch
import importlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from .errors import FixptError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to entries; a second use of a name is an error, an unknown name an error listing the known ones."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def remove(self, name: str) -> T:
        """Take an entry out again (a test's or a plugin's temporary registration)."""
        return self._entries.pop(name)

    def get(self, name: str) -> T:
        load_builtins()
        if name not in self._entries:
            raise FixptError(f"unknown {self.what} {name!r}; registered {self.what}s: {', '.join(sorted(self._entries))}")
        return self._entries[name]

    def names(self, pattern: str = "*") -> list[str]:
        load_builtins()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        load_builtins()
        return name in self._entries


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: Callable[..., Any]  # called as cls(config, input_spec, out_dim)
    config: type  # the typed config dataclass
    task: str  # the default task
    description: str
    tasks: tuple[str, ...] = ()  # every task the model serves (the default first)
    view: Any = None  # what iterate / check-contraction do with a trained model (None: they refuse it)
    example: Any = None  # the smallest run: flat sweep keys, or a function of a scratch folder returning them

    def task_for(self, task: str | None) -> str:
        """``task`` if the model serves it (None: the default), else an error naming the ones it does."""
        if task is None or task == self.task:
            return self.task
        if task not in self.tasks:
            raise FixptError(f"model {self.name!r} does not do task {task!r}; its tasks: {', '.join(self.tasks)}")
        return task


MODELS: Registry[ModelSpec] = Registry("model")
TASKS: Registry[Any] = Registry("task")
LAYOUTS: Registry[Any] = Registry("layout")
COMMANDS: list[Callable[[Any], None]] = []  # each adds a family's commands to the typer app it is given


def register(name: str, *, config: type, task: str | tuple[str, ...], view: Any = None, example: Any = None):
    """Class decorator adding a model to the registry under ``name``. ``task`` is one task or several (the
    first is the default; ``--task`` picks another); ``view`` is what ``iterate`` and ``check-contraction``
    do with it (e.g. :data:`fixpt.views.FIXED_POINT_VIEW`; None: they refuse it); ``example`` the smallest run
    (flat sweep keys, or a function of a scratch folder returning them), which ``tests/test_registry.py``
    runs through every command for every registered model."""

    def wrap(cls):
        doc = (cls.__doc__ or "").strip().splitlines()
        tasks = (task,) if isinstance(task, str) else tuple(task)
        MODELS.add(name, ModelSpec(name, cls, config, tasks[0], doc[0] if doc else "", tasks, view, example))
        return cls

    return wrap


def register_task(cls):
    """Class decorator adding an instance of a :class:`fixpt.tasks.Task` subclass under its ``name``."""
    TASKS.add(cls.name, cls())
    return cls


def register_layout(name: str):
    """Decorator adding a report layout (see :mod:`fixpt.report`) under ``name``."""

    def wrap(layout):
        LAYOUTS.add(name, layout)
        return layout

    return wrap


def register_commands(add: Callable[[Any], None]):
    """Decorator adding a family's CLI commands: ``add(app)`` is called with the root typer app."""
    COMMANDS.append(add)
    return add


BUILTIN_FAMILIES = "fixpt.builtin"
FAMILY_MODULES = [BUILTIN_FAMILIES]  # modules whose import registers model families; a plugin appends its own
# modules whose import registers commands only, and imports nothing heavy (no torch): `fixpt --help` imports them
# to list the commands without importing the families
COMMAND_MODULES = ["fixpt.builtin_commands"]
_loaded: set[str] = set()


def _import_once(names: list[str]) -> None:
    for name in names:
        if name not in _loaded:
            _loaded.add(name)
            importlib.import_module(name)


def _family_modules() -> list[str]:
    extra = [m.strip() for m in os.environ.get("FIXPT_FAMILIES", "").split(",") if m.strip()]
    return FAMILY_MODULES + [m for m in extra if m not in FAMILY_MODULES]


def load_builtins() -> None:
    """Import every module of :data:`FAMILY_MODULES` once (:mod:`fixpt.builtin`: the built-in families), then
    those named in ``$FIXPT_FAMILIES`` (comma-separated; how a plugin reaches sweep worker processes too).
    By name, as plugins are found: the registry itself depends on no family."""
    _import_once(_family_modules())


def load_commands() -> None:
    """Register every family's commands without importing the built-in families: the modules of
    :data:`COMMAND_MODULES` (light: the built-in families' commands import their libraries when they run), and
    the plugin families (:data:`FAMILY_MODULES` after the built-in one, ``$FIXPT_FAMILIES``), whose commands may
    be registered by the family module itself."""
    _import_once(COMMAND_MODULES + [m for m in _family_modules() if m != BUILTIN_FAMILIES])


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell pattern, sorted."""
    return MODELS.names(pattern)


def get_spec(name: str) -> ModelSpec:
    return MODELS.get(name)
