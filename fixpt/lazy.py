"""Package names imported on first use (PEP 562), so that importing a package costs nothing until one of its
names is read: ``fixpt --help`` imports ``fixpt`` and ``fixpt.cli`` without torch (1-2 s to import).

    __getattr__, __dir__ = exports(__name__, {"solve": ".solve", "Solution": ".solve", ...})

A name's first read imports its module and keeps the value in the package, so later reads are plain
attribute reads. A leaf: nothing of fixpt is imported here.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Callable


def exports(package: str, names: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package ``package``: ``names`` maps each public name to the module
    (relative to the package) that defines it."""

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name], package), name)
        vars(sys.modules[package])[name] = value  # the next read finds it without this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__


class FunctionsOverModules(types.ModuleType):
    """A package some of whose public names are functions named like their own modules (``fixpt.solve`` the
    function, defined in the module ``fixpt/solve.py``). Importing a submodule binds its name in the package to
    the module; for these names the binding is dropped, so the name stays the function (as with eager imports,
    where the function is bound after its module): ``sys.modules[__name__].__class__ = FunctionsOverModules``
    and list the names in ``__function_names__``."""

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and name in vars(self).get("__function_names__", ()):
            return  # the module stays reachable as sys.modules["package.name"] and by `from package.name import ...`
        super().__setattr__(name, value)
