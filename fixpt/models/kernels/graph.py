"""One graph's kernel constants, built once and handed to the blocks explicitly.

A model runs its blocks many times on one graph (every Picard step, every epoch). What the fast
kernels need of that graph (propagation matrices, the attention graph, the input features as a
sparse matrix) is computed once into a :class:`Graph`, which the model builds at the start of its
forward pass (outside any ``torch.func`` transform: the solve's steps may run inside ``jvp``) and
passes to its blocks. A :class:`GraphCache` remembers the last few graphs a model has seen by the
identity and version of their tensors, so training and evaluation on one data set build it once.
"""

from __future__ import annotations

from typing import Iterable

from torch import Tensor

from ...errors import FixptError
from .csr import PROPAGATIONS, SparseMatrix, propagation_matrix, sparse_features
from .gat import AttentionGraph

NEEDS = (*PROPAGATIONS, "attention")  # what a block may ask of a Graph
EDGE_FEATURES = ("edge_weight", "edge_attr")  # what a Graph keeps of its data's edges


class Graph:
    """A graph and what its blocks need of it.

    Args:
        edge_index: ``(2, E)`` edges, source first (PyG's convention).
        num_nodes: number of nodes.
        x: node features, or None. With the fast backend they are kept as a
            :class:`~fixpt.models.kernels.csr.SparseMatrix` when sparse enough (bag-of-words).
        needs: propagation kinds (``gcn``, ``mean``, ``sym``) and ``attention``, built now.
        backend: ``fast`` or ``reference``; the reference backend needs nothing built.
        edge_features: the graph's ``edge_weight`` (E,) and ``edge_attr`` (E, D) where it has them, for
            torch-geometric convolutions that take them (:class:`~fixpt.models.kernels.pyg.PyGConv`).
    """

    def __init__(self, edge_index: Tensor, num_nodes: int, x: Tensor | None = None, *,
                 needs: Iterable[str] = (), backend: str = "fast", edge_features: dict[str, Tensor | None] | None = None):
        needs = frozenset(needs)
        unknown = sorted(needs - set(NEEDS))
        if unknown:
            raise FixptError(f"unknown graph constants {unknown}; valid: {', '.join(NEEDS)}")
        self.edge_index, self.num_nodes, self.backend, self.needs = edge_index, num_nodes, backend, needs
        self.edge_features = {k: v for k, v in (edge_features or {}).items() if v is not None}
        fast = backend == "fast"
        sparse = sparse_features(x) if fast and x is not None else None
        self.x: Tensor | SparseMatrix | None = x if sparse is None else sparse
        self._propagation = {k: propagation_matrix(edge_index, num_nodes, k) for k in PROPAGATIONS if fast and k in needs}
        self.attention = AttentionGraph(edge_index, num_nodes) if fast and "attention" in needs else None

    def propagation(self, kind: str) -> SparseMatrix:
        """The propagation matrix ``kind`` (:func:`~fixpt.models.kernels.csr.propagation_matrix`)."""
        if kind not in self._propagation:
            raise FixptError(f"this graph was built without the {kind!r} propagation; list it in needs")
        return self._propagation[kind]


def as_graph(graph: Graph | Tensor, num_nodes: int, needs: Iterable[str], backend: str) -> Graph:
    """``graph`` itself, or, for a bare ``edge_index`` (a block used on its own), a Graph built for this call."""
    if isinstance(graph, Graph):
        return graph
    return Graph(graph, num_nodes, needs=needs, backend=backend)


class GraphCache:
    """The :class:`Graph` of each data object a model runs on, built on first sight and then reused while
    ``data.edge_index``, ``data.x`` and the edge features are the same tensors, unmodified (identity and
    version; the entry holds them, so their ids stay theirs). Keeps the ``size`` most recent graphs."""

    def __init__(self, needs: Iterable[str], backend: str, size: int = 4):
        self.needs, self.backend, self.size = frozenset(needs), backend, size
        self._entries: list[tuple[Tensor, Tensor | None, tuple, Graph]] = []

    def __call__(self, data) -> Graph:
        edge_index, x = data.edge_index, getattr(data, "x", None)
        features = {k: getattr(data, k, None) for k in EDGE_FEATURES}
        # edge features by identity too (the Graph holds them, so their ids stay theirs) and version
        edges = tuple(None if f is None else (id(f), f._version) for f in features.values())
        versions = (edge_index._version, None if x is None else x._version, data.num_nodes, edges)
        for ei, xx, v, graph in self._entries:
            if ei is edge_index and xx is x and v == versions:
                return graph
        graph = Graph(edge_index, data.num_nodes, x, needs=self.needs, backend=self.backend, edge_features=features)
        others = [e for e in self._entries if not (e[0] is edge_index and e[1] is x)]  # a stale version goes
        self._entries = others[len(others) - self.size + 1:] + [(edge_index, x, versions, graph)]
        return graph
