"""The model registry: a decorator and a dict (after timm's ``_registry.py``).

    @register("pign", config=PIGNConfig, task="node-classification")
    class PIGN(nn.Module): ...

Every *iterative* model exposes the three pieces of the fixed-point view,

    f = model.encode(batch)          # the free term, also the first iterate z0
    Pz = model.step(z, f, batch)     # P(z) = T(z) + f
    out = model.decode(z, batch)

plus ``model.solver_options()`` (method, alpha, tol, max_iter, batched) and
``model.certified_lipschitz(batch)`` (a proven bound on Lip(T), or None and why). The commands
``iterate`` and ``check-contraction`` use nothing else, so they work on every such model.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Callable

from .errors import FixptError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: Callable[..., Any]  # called as cls(config, in_dim, out_dim)
    config: type  # the typed config dataclass
    task: str  # the default task
    iterative: bool
    description: str
    tasks: tuple[str, ...] = ()  # every task the model serves (the default first)

    def task_for(self, task: str | None) -> str:
        """``task`` if the model serves it (None: the default), else an error naming the ones it does."""
        if task is None or task == self.task:
            return self.task
        if task not in self.tasks:
            raise FixptError(f"model {self.name!r} does not do task {task!r}; its tasks: {', '.join(self.tasks)}")
        return task


_MODELS: dict[str, ModelSpec] = {}


def register(name: str, *, config: type, task: str | tuple[str, ...], iterative: bool = True):
    """Class decorator adding a model to the registry under ``name``; a second use of a name is an error.
    ``task`` is one task or several (the first is the default; ``--task`` picks another)."""

    def wrap(cls):
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered by {_MODELS[name].cls.__qualname__}")
        doc = (cls.__doc__ or "").strip().splitlines()
        tasks = (task,) if isinstance(task, str) else tuple(task)
        _MODELS[name] = ModelSpec(name, cls, config, tasks[0], iterative, doc[0] if doc else "", tasks)
        return cls

    return wrap


def _ensure_loaded() -> None:
    from . import models  # noqa: F401  (importing registers the built-in models)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell pattern, sorted."""
    _ensure_loaded()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def get_spec(name: str) -> ModelSpec:
    _ensure_loaded()
    if name not in _MODELS:
        raise FixptError(f"unknown model {name!r}; registered models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]
