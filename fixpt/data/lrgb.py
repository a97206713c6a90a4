r"""LRGB PascalVOC-SP (Dwivedi et al., 2022) through ``torch_geometric.datasets.LRGBDataset``, offline.

PascalVOC-SP is node classification on SLIC superpixel graphs of Pascal VOC images: 14 node
features (RGB mean / std and position), 21 classes, standard train / val / test splits of
8498 / 1428 / 1429 graphs; the metric is macro F1 over the nodes of a split.

The raw files (``train.pickle``, ``val.pickle``, ``test.pickle``: each a list of tuples
``(x[N, 14], edge_attr[E, 2], edge_index[2, E], y[N])``, as the LRGB release ships them) are read
from ``<root>/lrgb/pascalvoc-sp/raw``; like the Planetoid loader, they are copied to a writable
cache where PyG writes ``processed/``. Nothing is downloaded.

The three splits become one disjoint-union graph with node masks, so the full-graph
node-classification task, the models and the commands need no special case. This is full-batch
training over all training graphs (one Adam step per epoch), where the LRGB reference trains on
minibatches of 32 graphs: same loss, different optimisation, so compare with Table 1 in that light.
The real data is not on our machines; the loader and the F1 metric are tested on a small generated
data set written in the same raw format (``tests/test_lrgb.py``).
"""

from __future__ import annotations

import hashlib

import torch
from torch_geometric.data import Data

from ..errors import FixptError
from .cache import cache_lock, refresh_copy
from .planetoid import cache_dir, data_root

NAME = "pascalvoc-sp"
SPLITS = ("train", "val", "test")
NUM_CLASSES = 21


def load_lrgb(root: str = "") -> Data:
    from torch_geometric.datasets import LRGBDataset

    raw = data_root(root) / "lrgb" / NAME / "raw"
    files = [f"{s}.pickle" for s in SPLITS]
    missing = [f for f in files if not (raw / f).is_file()]
    if missing:
        raise FixptError(f"PascalVOC-SP raw files not found in {raw} (missing {', '.join(missing)}); put the LRGB release's "
                         "train/val/test.pickle there, or point --data-root / FIXPT_DATA at the folder holding lrgb/")
    key = hashlib.sha1(str(raw.resolve()).encode()).hexdigest()[:12]
    work = cache_dir() / "lrgb" / key
    with cache_lock(work):  # one process builds the cache; the others wait and then read it whole
        refresh_copy(raw, work / NAME, files, pickles=files)
        graphs = {}
        try:
            for s in SPLITS:
                graphs[s] = list(LRGBDataset(str(work), NAME, split=s))
        except Exception as e:  # noqa: BLE001 - a damaged pickle surfaces here
            raise FixptError(f"could not read the PascalVOC-SP raw files in {raw} ({type(e).__name__}: {str(e)[:100]})") from None
    return disjoint_union(graphs)


def disjoint_union(splits: dict[str, list[Data]]) -> Data:
    """All graphs of all splits as one graph; ``{split}_mask`` marks each split's nodes, ``graph`` each node's graph."""
    xs, ys, edges, masks, graph_ids = [], [], [], {s: [] for s in SPLITS}, []
    offset = gid = 0
    for split in SPLITS:
        for g in splits[split]:
            n = g.num_nodes
            xs.append(g.x.float())
            ys.append(g.y.long().view(-1))
            edges.append(g.edge_index + offset)
            for s in SPLITS:
                masks[s].append(torch.full((n,), s == split, dtype=torch.bool))
            graph_ids.append(torch.full((n,), gid, dtype=torch.long))
            offset += n
            gid += 1
    data = Data(x=torch.cat(xs), y=torch.cat(ys), edge_index=torch.cat(edges, dim=1), graph=torch.cat(graph_ids),
                **{f"{s}_mask": torch.cat(m) for s, m in masks.items()})
    return data
