r"""GNN blocks from torch-geometric, their spectral normalisation and their certified Lipschitz bounds.

One block is :math:`T(z) = \sigma(\mathrm{conv}(z))` with :math:`\sigma` = ReLU (Lipschitz 1), so

.. math::
    \mathrm{Lip}(T) \le \mathrm{Lip}(\mathrm{conv}) \le
    \begin{cases}
      \|\hat A\|_2 \|W\|_2 & \text{GCN},\ \hat A = \hat D^{-1/2}(A + I)\hat D^{-1/2},\ \|\hat A\|_2 = 1 \\
      \|W_r\|_2 + \|M\|_2 \|W_l\|_2 & \text{SAGE},\ M = D^{-1}A \text{ (mean) or } D^{-1/2}AD^{-1/2} \text{ (sym)}
    \end{cases}

:math:`\|\hat A\|_2 = 1` because :math:`\hat A` is symmetric and similar to the row-stochastic
:math:`\hat D^{-1}(A + I)`, whose eigenvalues lie in :math:`[-1, 1]`; the same argument gives
:math:`\|D^{-1/2} A D^{-1/2}\|_2 \le 1`. For the mean aggregator we use the always valid
:math:`\|M\|_2 \le \sqrt{\|M\|_1 \|M\|_\infty}`. :math:`\|W\|_2` is the exact largest singular
value (an SVD), inflated by a relative 1e-5 to cover float rounding. GAT has no such bound: its
attention coefficients depend on :math:`z`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch_geometric.nn import GATConv, GCNConv, MessagePassing, SAGEConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import degree

from ..errors import FixptError

BACKBONES = ("gcn", "gat", "sage")
ROUNDING = 1.0 + 1e-5


class ScaledSpectralNorm(nn.Module):
    r"""Parametrisation :math:`W = \gamma V / \|V\|_2` (exact spectral norm), so :math:`\|W\|_2 = \gamma`."""

    def __init__(self, gamma: float):
        super().__init__()
        self.gamma = gamma

    def forward(self, V: Tensor) -> Tensor:
        return self.gamma * V / torch.linalg.matrix_norm(V, ord=2).clamp_min(1e-12)


class SymSAGEConv(MessagePassing):
    r"""GraphSAGE with the symmetric normalised propagation (norm at most 1):

    .. math::
        z_i' = W_r z_i + W_l \sum_{j \in N(i)} \frac{z_j}{\sqrt{d_i d_j}} + b
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(aggr="add")
        self.lin_l = nn.Linear(in_channels, out_channels, bias=True)
        self.lin_r = nn.Linear(in_channels, out_channels, bias=False)

    _cached_edge_index = None  # (edge_index, weight), reset by reset_propagation_cache

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        if self._cached_edge_index is None:
            self._cached_edge_index = gcn_norm(edge_index, None, x.size(0), add_self_loops=False)
        edge_index, weight = self._cached_edge_index
        out = self.propagate(edge_index, x=x, weight=weight)
        return self.lin_l(out) + self.lin_r(x)

    def message(self, x_j: Tensor, weight: Tensor) -> Tensor:
        return weight.view(-1, 1) * x_j


def make_block(backbone: str, dim: int, *, heads: int = 8, contractive: bool = False, gamma: float = 0.9,
               attn_dropout: float = 0.0) -> nn.Module:
    """A square ``dim -> dim`` conv; ``contractive`` normalises its weights so that Lip(conv) <= gamma."""
    if backbone not in BACKBONES:
        raise FixptError(f"unknown backbone {backbone!r}; valid: {', '.join(BACKBONES)}")
    if backbone == "gat":
        if contractive:
            raise FixptError("--contractive needs backbone gcn or sage: GAT's attention has no global Lipschitz bound")
        if dim % heads:
            raise FixptError(f"hidden={dim} must be divisible by heads={heads} for the GAT block")
        return GATConv(dim, dim // heads, heads=heads, dropout=attn_dropout)
    if backbone == "gcn":
        conv = GCNConv(dim, dim, cached=True)  # the cache lives for one solve: see reset_propagation_cache
        if contractive:  # a plain nn.Linear: PyG's Linear would also save the derived weight
            conv.lin = nn.Linear(dim, dim, bias=False)
            parametrize.register_parametrization(conv.lin, "weight", ScaledSpectralNorm(gamma))
        return conv
    if contractive:  # sage: ||W_r|| + ||W_l|| <= gamma with the norm-1 symmetric propagation
        conv = SymSAGEConv(dim, dim)
        parametrize.register_parametrization(conv.lin_l, "weight", ScaledSpectralNorm(gamma / 2))
        parametrize.register_parametrization(conv.lin_r, "weight", ScaledSpectralNorm(gamma / 2))
        return conv
    return SAGEConv(dim, dim)


def reset_propagation_cache(conv: nn.Module) -> None:
    """Forget the normalised adjacency cached by GCN / SymSAGE blocks.

    Iterating one block applies the same normalised propagation matrix many times; the blocks
    compute it at the first step and reuse it. Models call this once per forward pass (in
    ``encode``), so the cache never outlives the graph it was computed for.
    """
    if hasattr(conv, "_cached_edge_index"):
        conv._cached_edge_index = None
    if hasattr(conv, "_cached_adj_t"):
        conv._cached_adj_t = None


def spectral_norm(weight: Tensor) -> float:
    return float(torch.linalg.matrix_norm(weight.detach().double(), ord=2)) * ROUNDING


def mean_aggregation_norm_bound(edge_index: Tensor, num_nodes: int) -> float:
    r""":math:`\sqrt{\|M\|_1 \|M\|_\infty}` for :math:`M = D^{-1} A` (messages flow source -> target)."""
    src, dst = edge_index
    deg = degree(dst, num_nodes).clamp_min(1)
    col_sums = torch.zeros(num_nodes, dtype=torch.float64, device=edge_index.device).index_add_(0, src, (1.0 / deg[dst]).double())
    row_max = 1.0 if edge_index.numel() else 0.0
    return float(torch.sqrt(col_sums.max() * row_max)) * ROUNDING if edge_index.numel() else 0.0


def block_lipschitz_bound(conv: nn.Module, edge_index: Tensor, num_nodes: int) -> tuple[float | None, str]:
    """Certified upper bound on Lip(z -> ReLU(conv(z))) and how it was obtained."""
    if isinstance(conv, GCNConv):
        if not (conv.normalize and conv.add_self_loops):
            return None, "GCN without symmetric normalisation and self-loops"
        return spectral_norm(conv.lin.weight), "||W||_2 * ||A_hat||_2 (=1, symmetric normalised) * Lip(ReLU)=1"
    if isinstance(conv, SymSAGEConv):
        return (spectral_norm(conv.lin_r.weight) + spectral_norm(conv.lin_l.weight),
                "||W_r||_2 + ||D^-1/2 A D^-1/2||_2 (<=1) * ||W_l||_2, times Lip(ReLU)=1")
    if isinstance(conv, SAGEConv):
        m = mean_aggregation_norm_bound(edge_index, num_nodes)
        return (spectral_norm(conv.lin_r.weight) + m * spectral_norm(conv.lin_l.weight),
                f"||W_r||_2 + ||D^-1 A||_2 (<= sqrt(||M||_1 ||M||_inf) = {m:.3f}) * ||W_l||_2, times Lip(ReLU)=1")
    if isinstance(conv, GATConv):
        return None, "GAT's attention coefficients depend on the features, so no global Lipschitz bound exists; local estimates only"
    return None, f"no bound known for {type(conv).__name__}"
