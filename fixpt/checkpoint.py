"""``ckpt.pt``: everything needed to rebuild a trained model and its inputs, and nothing executable.

Layout (a plain dict of tensors, strings, numbers, lists and dicts)::

    {"format": "fixpt-checkpoint", "format_version": 2, "fixpt_version": "0.1.0",
     "model": "pign", "config": {...}, "data": {...}, "train": {...},
     "metrics": {...}, "state_dict": {...}}

It is written atomically (temp file, then rename) and read with ``torch.load(weights_only=True)``,
which refuses any pickled object other than tensors and primitive containers, so loading a file
can never run code stored in it.

Format versions: 2 keeps the input layer of PIGN / IterGNN at ``encoder.0``; version 1 files may hold
it at ``encoder.1`` (behind a separate dropout module) and are migrated when read (:func:`_migrate`).
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import FixptError
from .version import __version__

FORMAT = "fixpt-checkpoint"
FORMAT_VERSION = 2
REQUIRED = ("model", "config", "data", "state_dict")


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: str | os.PathLike, *, model: str, config: dict, data: dict, state_dict: dict,
                    train: dict | None = None, metrics: dict | None = None, task: str | None = None) -> None:
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "fixpt_version": __version__,
        "model": model, "task": task, "config": config, "data": data, "train": train or {}, "metrics": metrics or {},
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint; every failure is a :class:`FixptError` naming the fix."""
    path = Path(path)
    if not path.exists():
        raise FixptError(f"checkpoint {path} does not exist; pass the ckpt.pt written by `fixpt train ... --out DIR`")
    if path.is_dir():
        hint = " (did you mean its ckpt.pt?)" if (path / "ckpt.pt").exists() else ""
        raise FixptError(f"checkpoint {path} is a directory{hint}; pass the ckpt.pt file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged archive fails in many ways (EOF, bad zip, KeyError in the memo...)
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(e))
        if isinstance(e, pickle.UnpicklingError) and found:
            raise FixptError(f"{path} asks to load the Python object {found.group(1)}; refusing to unpickle anything "
                             "but tensors and plain data: use a checkpoint written by `fixpt train`") from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FixptError(f"{path} is not a readable checkpoint (truncated or corrupt: {first[:120]}); "
                         "retrain or copy the file again") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise FixptError(f"{path} is not a fixpt checkpoint (no '{FORMAT}' header); pass a ckpt.pt written by `fixpt train`")
    version = ckpt.get("format_version")
    if not isinstance(version, int):
        raise FixptError(f"{path} has no valid format_version; it is damaged, retrain it")
    if version > FORMAT_VERSION:
        raise FixptError(f"{path} uses checkpoint format {version}, newer than this fixpt understands "
                         f"({FORMAT_VERSION}); upgrade fixpt (it was written by fixpt {ckpt.get('fixpt_version', '?')})")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise FixptError(f"{path} lacks {', '.join(missing)}; it is damaged, retrain it")
    return _migrate(ckpt)


def _migrate(ckpt: dict) -> dict:
    """A checkpoint of an older format in today's layout (see the module docstring)."""
    state = ckpt["state_dict"]
    if ckpt["format_version"] < 2 and "encoder.1.weight" in state and "encoder.0.weight" not in state:
        ckpt["state_dict"] = {("encoder.0." + k[len("encoder.1."):] if k.startswith("encoder.1.") else k): v for k, v in state.items()}
    ckpt["format_version"] = FORMAT_VERSION
    return ckpt
