"""The built-in families' own commands (``fixpt data navier-stokes``, ``fixpt recycle run / score``): importing
this module registers them (:func:`fixpt.registry.register_commands`). It is light on purpose: the command
modules import torch and their family's libraries inside the commands, so ``fixpt --help`` lists them in a
fraction of a second (:data:`fixpt.registry.COMMAND_MODULES`)."""

from .data import commands as data_commands  # noqa: F401
from .recycle import commands as recycle_commands  # noqa: F401
