"""The private copies of raw data that PyG processes: built under an exclusive lock, so processes (sweep
workers, parallel sweeps) never see another's half-built cache (whoever holds the lock builds; the
others wait, then find it complete), and keyed on the raw files' content."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
from pathlib import Path

from .safe_pickle import check_pickle


@contextlib.contextmanager
def cache_lock(folder: str | Path):
    """Hold an exclusive ``flock`` on ``folder/.lock`` (created if needed) for the duration of the block.
    The kernel releases it when the holder exits, even when it is killed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def refresh_copy(raw: Path, work: Path, files: list[str], pickles: list[str]) -> None:
    """Copy ``files`` from ``raw`` to ``work/raw`` and drop PyG's ``work/processed`` unless the copy is of these
    very files (their SHA-256 sums, kept in ``work/raw.sha256``). Each of ``pickles`` is checked
    (:func:`fixpt.data.safe_pickle.check_pickle`) before PyG may load it. Call it holding :func:`cache_lock`."""
    sums = {f: hashlib.sha256((raw / f).read_bytes()).hexdigest() for f in files}
    manifest = work / "raw.sha256"
    if manifest.is_file() and manifest.read_text() == json.dumps(sums, sort_keys=True):
        return
    for f in pickles:  # refuse any file that would run code when PyG unpickles it
        check_pickle(raw / f)
    (work / "raw").mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copyfile(raw / f, work / "raw" / f)
    shutil.rmtree(work / "processed", ignore_errors=True)
    manifest.write_text(json.dumps(sums, sort_keys=True))
