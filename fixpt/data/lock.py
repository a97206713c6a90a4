"""An exclusive lock on a cache folder, so processes (sweep workers, parallel sweeps) never see another's
half-built cache: whoever holds the lock builds; the others wait, then find the cache complete."""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path


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
