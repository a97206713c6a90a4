"""The recycle family: the ``alphafold-recycle`` model, its task and its commands (``fixpt recycle ...``)."""

from . import commands, model, task  # noqa: F401  (importing registers them)
