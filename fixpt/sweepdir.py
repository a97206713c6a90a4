"""The files of a sweep directory, written by :mod:`fixpt.sweep` and read by :mod:`fixpt.report`:

    index.json       every run ever planned into the directory:
                     {"preset", "name", "report" (the layout), "varying", "runs": [{"id", "model", "params"}]}
    runs/<id>/       one run folder each (:class:`fixpt.training.rundir.RunDir`)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

INDEX = "index.json"
RUNS = "runs"


def run_folder(sweep_dir: str | Path, run_id: str) -> Path:
    return Path(sweep_dir) / RUNS / run_id


def varying_keys(params: Iterable[dict]) -> list[str]:
    """The keys (seed aside), in order of first appearance, that take more than one value over ``params``; a key
    set in some and absent from others varies too ("unset" counts as a value), as when one grid of a union sets
    a switch the other leaves out."""
    params = list(params)
    keys = dict.fromkeys(k for p in params for k in p if k != "seed")
    return [k for k in keys if len({json.dumps(p.get(k, "<unset>"), sort_keys=True) for p in params}) > 1]
