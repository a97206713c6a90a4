"""Typed configs: dataclasses built from plain dicts, with unknown keys and bad choices rejected.

A field may declare its valid values with ``field(metadata={"choices": (...)})``, its range with
``"min"`` / ``"max"`` (inclusive) and ``"above"`` / ``"below"`` (exclusive), and a help text with
``metadata={"help": ...}``; every number must also be finite, and an integer fit in 64 bits. These
checks, in :func:`check_value`, are the one place a config value is validated; the CLI turns every field into an option of the same name. A field
typed ``X | None`` with default None means "decided by another field" (e.g. PIGN's ``form``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any, TypeVar

from .errors import FixptError

C = TypeVar("C")


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _coerce(name: str, value: Any, typ: Any) -> Any:
    if not isinstance(typ, type):  # a string annotation; "float | None" coerces as float (None stays None)
        typ = {"int": int, "float": float, "bool": bool, "str": str}.get(str(typ).removesuffix(" | None"), None)
    if typ is None or value is None:
        return value
    try:
        if typ is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if typ is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return typ(value)
    except (TypeError, ValueError):
        raise FixptError(f"config key {name!r} expects {typ.__name__}, got {value!r}") from None


def from_dict(cls: type[C], values: dict[str, Any], *, what: str = "config") -> C:
    """Build ``cls(**values)``; an unknown key is an error naming it and listing the valid keys."""
    valid = field_names(cls)
    unknown = [k for k in values if k not in valid]
    if unknown:
        hints = [m for k in unknown for m in difflib.get_close_matches(k, valid, n=1)]
        hint = f" (did you mean {', '.join(repr(h) for h in hints)}?)" if hints else ""
        raise FixptError(f"unknown {what} key {', '.join(repr(k) for k in unknown)}{hint}; valid keys: {', '.join(valid)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            v = _coerce(f.name, values[f.name], f.type)
            check_value(f, v, what)
            choices = f.metadata.get("choices")
            if choices is not None and v not in choices and not (v is None and f.default is None):
                raise FixptError(f"{what} key {f.name!r} must be one of {', '.join(map(str, choices))}; got {v!r}")
            kwargs[f.name] = v
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check()
    return obj


INT64 = 2**63
BOUNDS = (("min", lambda v, b: v >= b, ">= {}"), ("max", lambda v, b: v <= b, "<= {}"),
          ("above", lambda v, b: v > b, "> {}"), ("below", lambda v, b: v < b, "< {}"))


def check_value(f: dataclasses.Field, v: Any, what: str = "config") -> None:
    """A coerced value against its field: finite, within 64 bits, within the metadata's bounds."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return
    if isinstance(v, float) and not math.isfinite(v):
        raise FixptError(f"{what} key {f.name!r} must be a finite number; got {v!r}")
    if isinstance(v, int) and not -INT64 <= v < INT64:
        raise FixptError(f"{what} key {f.name!r} must fit in 64 bits; got {v}")
    broken = [text.format(f.metadata[key]) for key, ok, text in BOUNDS if key in f.metadata and not ok(v, f.metadata[key])]
    if broken:
        wanted = " and ".join(text.format(f.metadata[key]) for key, _, text in BOUNDS if key in f.metadata)
        hint = f" ({f.metadata['hint']})" if "hint" in f.metadata else ""
        raise FixptError(f"{what} key {f.name!r} must be {wanted}; got {v!r}{hint}")


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)
