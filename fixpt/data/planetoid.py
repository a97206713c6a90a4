"""Cora, CiteSeer and PubMed through ``torch_geometric.datasets.Planetoid``, offline.

The raw files are read from ``<root>/planetoid/<Name>/raw``, ``root`` being ``--data-root``, else
``$FIXPT_DATA``, else ``~/.cache/fixpt``. The root may be read-only: the raw files are copied to a
writable cache (``$XDG_CACHE_HOME/fixpt``, default ``~/.cache/fixpt``) and PyG writes its
``processed/`` folder there, never beside the raw files. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from torch_geometric.data import Data

from ..errors import FixptError
from .cache import cache_lock, refresh_copy

NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
RAW_SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fixpt"


def data_root(root: str = "") -> Path:
    return Path(root or os.environ.get("FIXPT_DATA") or cache_dir()).expanduser()


def load_planetoid(dataset: str, root: str = "") -> Data:
    from torch_geometric.datasets import Planetoid

    name = NAMES[dataset]
    base = data_root(root)
    raw = base / "planetoid" / name / "raw"
    files = [f"ind.{dataset}.{s}" for s in RAW_SUFFIXES]
    missing = [f for f in files if not (raw / f).is_file()]
    if missing:
        raise FixptError(f"{name} raw files not found in {raw} (missing {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}); "
                         f"put the Planetoid raw files there, or point --data-root / FIXPT_DATA at the folder holding planetoid/")
    # a private, writable copy keyed by the source folder: PyG writes processed/ next to raw/
    work = cache_dir() / "planetoid" / hashlib.sha1(str(raw.resolve()).encode()).hexdigest()[:12]
    with cache_lock(work):  # one process builds the cache; the others wait and then read it whole
        refresh_copy(raw, work / name, files, pickles=files[:-1])  # all but test.index (text) are pickles
        try:
            ds = Planetoid(str(work), name)
        except Exception as e:  # a damaged raw file surfaces here
            raise FixptError(f"could not read the {name} raw files in {raw} ({type(e).__name__}: {str(e)[:100]}); "
                             "check them against planetoid/SHA256SUMS") from None
    data = ds[0]
    # row-normalise the bag-of-words features (PyG's NormalizeFeatures), before any noise
    data.x = data.x / data.x.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return data
