"""Cora, CiteSeer and PubMed through ``torch_geometric.datasets.Planetoid``, offline.

The raw files are read from ``<root>/planetoid/<Name>/raw``, ``root`` being ``--data-root``, else
``$FIXPT_DATA``, else ``~/.cache/fixpt``. The root may be read-only: the raw files are copied to a
writable cache (``$XDG_CACHE_HOME/fixpt``, default ``~/.cache/fixpt``) and PyG writes its
``processed/`` folder there, never beside the raw files. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from torch_geometric.data import Data

from ..errors import FixptError
from .lock import cache_lock
from .safe_pickle import check_pickle

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
        _refresh_copy(raw, work / name, files)
        try:
            ds = Planetoid(str(work), name)
        except Exception as e:  # a damaged raw file surfaces here
            raise FixptError(f"could not read the {name} raw files in {raw} ({type(e).__name__}: {str(e)[:100]}); "
                             "check them against planetoid/SHA256SUMS") from None
    data = ds[0]
    # row-normalise the bag-of-words features (PyG's NormalizeFeatures), before any noise
    data.x = data.x / data.x.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return data


def _refresh_copy(raw: Path, work: Path, files: list[str]) -> None:
    """Copy the raw files to ``work/raw`` and drop PyG's ``processed/`` unless the copy is of these very files
    (their SHA-256 sums, kept in ``work/raw.sha256``); every pickle is checked before PyG may load it."""
    sums = {f: hashlib.sha256((raw / f).read_bytes()).hexdigest() for f in files}
    manifest = work / "raw.sha256"
    if manifest.is_file() and manifest.read_text() == json.dumps(sums, sort_keys=True):
        return
    for f in files[:-1]:  # every file but test.index (text) is a pickle PyG will load: refuse any that runs code
        check_pickle(raw / f)
    (work / "raw").mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copyfile(raw / f, work / "raw" / f)
    shutil.rmtree(work / "processed", ignore_errors=True)
    manifest.write_text(json.dumps(sums, sort_keys=True))
