"""Tasks: the interface between a model family's data and the commands (:mod:`fixpt.tasks.base`).
Each family's task lives in its own module and registers itself; look one up with :func:`get_task`."""

from ..registry import TASKS
from .base import FitRequest, InputSpec, Metric, Task


def get_task(name: str) -> Task:
    return TASKS.get(name)


__all__ = ["Task", "Metric", "InputSpec", "FitRequest", "get_task"]
