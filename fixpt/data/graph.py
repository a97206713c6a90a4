"""Node-classification graphs: the data config, drop-in noise and the one cached loader."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torch
from torch_geometric.data import Data

from ..errors import FixptError

DATASETS = ("csbm", "longrange", "cora", "citeseer", "pubmed", "pascalvoc-sp")


@dataclass
class GraphDataConfig:
    dataset: str = field(default="csbm", metadata={"choices": DATASETS, "help": "csbm or longrange (generated, offline), a Planetoid set, or LRGB pascalvoc-sp"})
    noise: float = field(default=0.0, metadata={"min": 0, "max": 1, "hint": "a fraction of the feature entries: 0.5 is the paper's 50 %", "help": "drop-in noise p: +1 on floor(p*N*F) feature entries"})
    noise_seed: int = field(default=2147483647, metadata={"min": 0, "help": "seed of the noise draw (fixed, so all runs see one graph)"})
    data_root: str = field(default="", metadata={"location": True, "help": "folder holding planetoid/<Name>/raw (default: $FIXPT_DATA, else ~/.cache/fixpt)"})
    csbm_nodes: int = field(default=1000, metadata={"min": 8, "help": "csbm: number of nodes"})
    csbm_classes: int = field(default=4, metadata={"min": 2, "help": "csbm: number of classes"})
    csbm_degree: float = field(default=6.0, metadata={"above": 0, "help": "csbm: expected degree"})
    csbm_homophily: float = field(default=0.8, metadata={"min": 0, "max": 1, "help": "csbm: fraction of edges inside a class"})
    csbm_signal: float = field(default=1.0, metadata={"min": 0, "help": "csbm: distance of class means over noise std"})
    csbm_features: int = field(default=32, metadata={"min": 1, "help": "csbm: feature dimension"})
    csbm_seed: int = field(default=0, metadata={"min": 0, "help": "csbm: seed of the generated graph"})
    longrange_distance: int = field(default=6, metadata={"min": 1, "help": "longrange: hops between a path's label signal and its target"})
    longrange_graphs: int = field(default=400, metadata={"min": 4, "help": "longrange: number of paths"})
    longrange_classes: int = field(default=4, metadata={"min": 2, "help": "longrange: number of classes"})
    longrange_noise_std: float = field(default=0.1, metadata={"min": 0, "help": "longrange: feature noise"})
    longrange_seed: int = field(default=0, metadata={"min": 0, "help": "longrange: seed of the generated graph"})

    def validate(self) -> None:
        if not 0.0 <= self.noise <= 1.0:
            raise FixptError(f"noise={self.noise} must lie in [0, 1], a fraction of the feature entries (0.5 is the paper's 50 %)")
        if self.longrange_distance < 1 or self.longrange_graphs < 4:
            raise FixptError("longrange_distance must be >= 1 and longrange_graphs >= 4")
        if not 0.0 <= self.csbm_homophily <= 1.0:
            raise FixptError(f"csbm_homophily={self.csbm_homophily} must lie in [0, 1]")


def drop_in_noise(x: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    r"""The paper's drop-in noise, drawn exactly as its authors' code draws it.

    Add 1 to :math:`c = \lfloor p N F \rfloor` entries of the (already row-normalised, see
    :func:`fixpt.data.planetoid.load_planetoid`) features. The authors build the vector
    :math:`v = (0_{NF - c}, 1_c)`, permute it with ``perm = randperm(NF)`` from a generator seeded by
    ``seed`` and add :math:`v_{\mathrm{perm}}` reshaped to :math:`(N, F)`; so flat entry :math:`i` gets
    +1 exactly when :math:`\mathrm{perm}_i \ge NF - c`, which is what is computed here (the same
    graph, entry for entry). The draw depends only on (N, F, p, seed), never on the run's seed, so
    every run sees the same noisy graph.
    """
    if p <= 0:
        return x
    n, f = x.shape
    count = min(math.floor(p * n * f), n * f)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n * f, generator=g)
    return x + (perm >= n * f - count).to(x.dtype).reshape(n, f)


@functools.lru_cache(maxsize=8)
def _load_cached(cfg_key: tuple) -> Data:
    cfg = GraphDataConfig(**dict(cfg_key))
    if cfg.dataset == "csbm":
        from .csbm import make_csbm

        data = make_csbm(cfg)
    elif cfg.dataset == "longrange":
        from .longrange import make_longrange

        data = make_longrange(cfg)
    elif cfg.dataset == "pascalvoc-sp":
        from .lrgb import NUM_CLASSES, load_lrgb

        data = load_lrgb(cfg.data_root)
        data.num_classes = NUM_CLASSES  # a split may miss a class; the output layer has all 21
    else:
        from .planetoid import load_planetoid

        data = load_planetoid(cfg.dataset, cfg.data_root)
    data.x = drop_in_noise(data.x, cfg.noise, cfg.noise_seed)
    if "num_classes" not in data:
        data.num_classes = int(data.y.max()) + 1
    return data


def load_graph(cfg: GraphDataConfig) -> Data:
    """The graph of ``cfg`` (Planetoid features row-normalised; then the drop-in noise), loaded and preprocessed once
    per process and cached; callers get a shallow copy they may move to a device."""
    key = tuple(sorted(vars(cfg).items()))
    return _load_cached(key).clone()
