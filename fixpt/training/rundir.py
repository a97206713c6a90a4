"""The run folder: every file a run writes, each written atomically, ``metrics.json`` last.

A run folder holds ``config.json`` (what was asked for), ``ckpt.pt`` (the weights), ``metrics.json``
(the results; a run is complete exactly when it exists beside ``config.json``) and, for a failed run,
``error.json`` (the message and traceback) instead. A training run adds ``history.csv`` (one row per
epoch, or per logging window of a step-based loop) and, while it trains, its resumable state
``train_state.pt`` (:mod:`fixpt.training.resume`); a family's runner may add its own artefacts (the
recycle family's predictions and score table). Writes are atomic (:func:`fixpt.checkpoint.atomic_write`),
so a run killed at any moment leaves either the old file or the new one, never half of one; the one
exception is ``history.csv``, which grows by appended rows, so that a killed run keeps every earlier row.
A sweep writes ``config.json`` before the run; ``fixpt train`` writes it after ``metrics.json``, so that a run
failing before its first file leaves no folder behind (:func:`removed_if_failed_empty`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import secrets
import socket
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import atomic_write, save_checkpoint
from ..errors import FixptError

CONFIG, CKPT, METRICS, ERROR, CLAIM = "config.json", "ckpt.pt", "metrics.json", "error.json", "claim.json"
HISTORY, STATE = "history.csv", "train_state.pt"


SCORE_PREFIXES = ("test_", "val_", "train_")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _stale(claim: Path) -> bool:
    """Whether a claim's process is gone: on this host, its pid is not alive. A claim from another host is
    trusted (its process cannot be seen from here); a claim still being written is fresh for a minute."""
    try:
        holder = json.loads(claim.read_text())
        host, pid = holder["host"], int(holder["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return time.time() - claim.stat().st_mtime > 60
        except OSError:
            return True  # gone meanwhile
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def writable_folder(path: str | Path, what: str = "--out") -> Path:
    """``path`` as a folder that can be created (or exists) and written, checked before any work and without
    creating anything; else a one-line error."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise FixptError(f"{what} {path}: a file is in the way ({existing} is a file); choose a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FixptError(f"{what} {path} cannot be written ({existing} is not writable); choose a writable folder")
    return path


def new_run_folder(parent: str | Path, stem: str) -> Path:
    """A fresh folder ``parent/stem-<time>-<4 hex>``, created exclusively: runs started in the same second never share one."""
    parent = writable_folder(parent)
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        folder = parent / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


@contextlib.contextmanager
def removed_if_failed_empty(folder: Path, fresh: bool, parent_fresh: bool = False):
    """Run the block; if it raises and ``fresh`` (the folder was made for this run, not named by the user or
    resumed), remove the folder when nothing was written into it, so that a run failing before its first
    file (bad data, a bad option found late) leaves no empty folder behind. A folder with any file is kept.
    ``parent_fresh``: the parent (``runs/``) was made for this run too, and goes the same way when empty."""
    try:
        yield
    except BaseException:
        for made, path in ((fresh, folder), (fresh and parent_fresh, folder.parent)):
            if made:
                with contextlib.suppress(OSError):
                    path.rmdir()  # refuses a folder that is not empty
        raise


def has_run(path: Path) -> bool:
    """Whether ``path`` already holds a run (its checkpoint or its metrics)."""
    return (path / CKPT).exists() or (path / METRICS).exists()


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))


def _csv_lines(rows: list[dict], header: list[str], with_header: bool) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, restval="", extrasaction="raise", lineterminator="\n")
    if with_header:
        writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _csv_value(text: str):
    """A history cell back as written: int, float (``repr`` round-trips exactly), empty as None, else the text."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _complete_lines(path: Path) -> int:
    """Cut a last line that a killed writer left unfinished (no newline); returns the file's size after."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return size
        f.seek(0)
        keep = f.read().rfind(b"\n") + 1
        f.truncate(keep)
        return keep


class RunDir:
    """One run's folder; ``RunDir(None)`` writes nothing (a run kept in memory only)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def status(self) -> str:
        """``done`` (valid metrics beside the config), ``failed`` (an error recorded) or ``pending`` (a run whose
        metrics do not validate, e.g. a truncated file, is pending: a sweep reruns it)."""
        if (self.path / METRICS).is_file() and (self.path / CONFIG).is_file() and self.metrics_problem() is None:
            return "done"
        return "failed" if (self.path / ERROR).is_file() else "pending"

    def metrics_problem(self) -> str | None:
        """Why ``metrics.json`` cannot be used (None: it can): not JSON, not an object, or a score
        (``test_*``, ``val_*``, ``train_*``) that is not a number."""
        return self._metrics()[1]

    def read_metrics(self) -> dict:
        """``metrics.json``, validated (:meth:`metrics_problem`); a FixptError naming the file otherwise."""
        metrics, problem = self._metrics()
        if problem is not None:
            raise FixptError(problem)
        return metrics

    def _metrics(self) -> tuple[dict | None, str | None]:
        """``metrics.json`` read once: (its contents, None), or (None, why it cannot be used)."""
        try:
            metrics = json.loads((self.path / METRICS).read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            return None, f"{self.path / METRICS} is not readable JSON ({type(e).__name__})"
        if not isinstance(metrics, dict):
            return None, f"{self.path / METRICS} is not a run's metrics (a JSON object)"
        bad = [k for k, v in metrics.items() if k.startswith(SCORE_PREFIXES) and not (v is None or _is_number(v))
               and not isinstance(v, (list, dict))]
        return (None, f"{self.path / METRICS}: {bad[0]} is {metrics[bad[0]]!r}, not a number") if bad else (metrics, None)

    def claim(self) -> bool:
        """Take the run for this process: an exclusive create of ``claim.json`` (host, pid, start time), so sweep
        processes sharing the folder (on one machine or several on a shared filesystem) never train a run twice.
        A claim whose process is gone (same host, pid not alive) is stale and taken over. False: another
        process holds the run."""
        self.path.mkdir(parents=True, exist_ok=True)
        path = self.path / CLAIM
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not _stale(path):
                    return False
                path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}, f)
            return True
        return False

    def release(self) -> None:
        (self.path / CLAIM).unlink(missing_ok=True)

    def start(self, config: dict) -> None:
        """Create the folder, forget an earlier failure and record what the run is asked to do."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / ERROR).unlink(missing_ok=True)
        write_json(self.path / CONFIG, config)

    def write_checkpoint(self, **payload) -> None:
        if self.path is not None:
            save_checkpoint(self.path / CKPT, **payload)

    def write_state(self, name: str, payload: dict) -> None:
        """A resumable training state (``torch.save``, read back with ``weights_only=True``)."""
        if self.path is not None:
            atomic_write(self.path / name, lambda tmp: torch.save(payload, tmp))

    def remove_state(self) -> None:
        """Drop the resumable state of a finished run (its results are in ``ckpt.pt`` and ``metrics.json``)."""
        if self.path is not None:
            (self.path / STATE).unlink(missing_ok=True)

    def append_history(self, row: dict) -> None:
        """Append one row (an epoch's, or a logging window's, values) to ``history.csv``; the header, the
        first row's keys, comes first in a new file. Earlier rows are never rewritten, so a run killed at any
        moment keeps them; a last line cut short by the kill is dropped before the next append (and by
        :meth:`read_history`)."""
        if self.path is None:
            return
        path = self.path / HISTORY
        header = self._history_header() if path.exists() and _complete_lines(path) else None
        with open(path, "a", newline="") as f:
            f.write(_csv_lines([row], header or list(row), with_header=header is None))
            f.flush()

    def write_history(self, rows: list[dict]) -> None:
        """``history.csv`` replaced (atomically) by ``rows``: a resumed run's history as of its saved state."""
        if self.path is None:
            return
        text = _csv_lines(rows, list(rows[0]), with_header=True) if rows else ""
        atomic_write(self.path / HISTORY, lambda tmp: Path(tmp).write_text(text))

    def read_history(self) -> list[dict]:
        """The rows of ``history.csv`` (numbers as numbers); an unfinished last line is left out."""
        try:
            text = (self.path / HISTORY).read_text()
        except FileNotFoundError:
            return []
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines = lines[:-1]
        return [{k: _csv_value(v) for k, v in row.items()} for row in csv.DictReader(lines)]

    def _history_header(self) -> list[str]:
        with open(self.path / HISTORY, newline="") as f:
            return next(csv.reader(f))

    def write_metrics(self, metrics: dict) -> None:
        if self.path is not None:
            write_json(self.path / METRICS, metrics)

    def write_error(self, e: BaseException, tb: str | None = None) -> str:
        """Record a failure in ``error.json``; returns its one-line description ``Type: message``."""
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        tb = tb if tb is not None else "".join(traceback.format_exception(type(e), e, e.__traceback__))
        if self.path is not None:
            write_json(self.path / ERROR, {"type": type(e).__name__, "message": message, "traceback": tb})
        return f"{type(e).__name__}: {message}"
