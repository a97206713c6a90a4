"""The files of a sweep directory, written by :mod:`fixpt.sweep` and read by :mod:`fixpt.report`:

    index.json       every run ever planned into the directory:
                     {"preset", "name", "report" (the layout), "varying", "runs": [{"id", "model", "params"}]}
    runs/<id>/       one run folder each (:class:`fixpt.training.rundir.RunDir`)
"""

from __future__ import annotations

from pathlib import Path

INDEX = "index.json"
RUNS = "runs"


def run_folder(sweep_dir: str | Path, run_id: str) -> Path:
    return Path(sweep_dir) / RUNS / run_id
