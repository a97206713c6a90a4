r"""Graph attention (Velickovic et al., 2018), in the kernel backend chosen when the block is built.

.. math::
    h = x W^\top \in \mathbb{R}^{N \times H \times C}, \qquad
    e_{ij}^k = \mathrm{LeakyReLU}_{0.2}\big(a_{dst}^k \cdot h_i^k + a_{src}^k \cdot h_j^k\big), \qquad
    \alpha_{ij}^k = \operatorname{softmax}_{j \in N(i) \cup \{i\}} e_{ij}^k,

    x_i'^{\,k} = \sum_{j} \mathrm{dropout}(\alpha_{ij}^k)\, h_j^k, \qquad
    x_i' = \big\Vert_{k=1}^{H} x_i'^{\,k} + b \quad (\text{heads concatenated}) \qquad\text{or}\qquad
    x_i' = \tfrac{1}{H} \textstyle\sum_{k=1}^{H} x_i'^{\,k} + b \quad (\text{averaged, } \texttt{concat=False})

The same maths, initialisation and parameter names as torch-geometric's ``GATConv`` (self-loops
replaced by one per node), which is the reference backend; the fast one computes the aggregation
as one CSR product (:mod:`fixpt.models.kernels.gat`). ``tests/test_gat.py`` checks they agree.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv

from . import kernels
from .kernels import Graph, SparseMatrix


class GATBlock(nn.Module):
    """Multi-head graph attention: ``in_channels -> heads * out_channels`` with the heads concatenated,
    or ``in_channels -> out_channels`` with ``concat=False`` (the heads averaged, as ``GATConv(concat=False)``).

    Args:
        dropout: dropout on the attention coefficients, in training (default: 0).
        backend: ``fast`` or ``reference`` (default: :func:`fixpt.models.kernels.backend`).

    Shapes: ``x`` (N, in_channels) or a sparse matrix (fast backend), ``graph`` a
    :class:`~fixpt.models.kernels.Graph` or an ``edge_index`` (2, E) -> (N, heads * out_channels) or (N, out_channels).
    """

    graph_needs = ("attention",)

    def __init__(self, in_channels: int, out_channels: int, heads: int = 1, dropout: float = 0.0,
                 negative_slope: float = 0.2, concat: bool = True, backend: str | None = None):
        super().__init__()
        self.heads, self.out_channels, self.dropout, self.negative_slope = heads, out_channels, dropout, negative_slope
        self.concat, self.backend = concat, kernels.backend(backend)
        self.lin = nn.Linear(in_channels, heads * out_channels, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        self.bias = nn.Parameter(torch.empty(heads * out_channels if concat else out_channels))
        self.reset_parameters()
        if self.backend == "reference":
            self.reference = kernels.ReferenceConv(lambda: GATConv(in_channels, out_channels, heads=heads, concat=concat,
                                                                   negative_slope=negative_slope, dropout=dropout))

    def reset_parameters(self) -> None:
        for p in (self.lin.weight, self.att_src, self.att_dst):  # glorot, as torch-geometric
            bound = math.sqrt(6.0 / (p.size(-2) + p.size(-1)))
            nn.init.uniform_(p, -bound, bound)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor | SparseMatrix, graph: Graph | Tensor) -> Tensor:
        n = x.shape[0]
        graph = kernels.as_graph(graph, n, self.graph_needs, self.backend)
        if self.backend == "reference":
            return self.reference(self, x, graph.edge_index)
        h = kernels.linear(x, self.lin.weight).view(n, self.heads, self.out_channels)
        out = kernels.attention(graph.attention, h, self.att_src, self.att_dst, self.negative_slope,
                                self.dropout, self.training)  # (N, H, C)
        if not self.concat:
            return out.mean(1) + self.bias
        return out.reshape(n, self.heads * self.out_channels) + self.bias

    def extra_repr(self) -> str:
        return (f"{self.lin.in_features}, {self.out_channels}, heads={self.heads}, dropout={self.dropout}"
                + ("" if self.concat else ", concat=False") + (", backend=reference" if self.backend == "reference" else ""))
