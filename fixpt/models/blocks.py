r"""GNN blocks (GCN, GraphSAGE and GAT, with CSR sparse products), their spectral normalisation and their certified Lipschitz bounds.

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
from torch_geometric.utils import degree

from ..errors import FixptError
from .dropout import dropout, dropout_features, linear
from .gat import GATBlock
from .sparse import propagation_matrix

BACKBONES = ("gcn", "gat", "sage")
ROUNDING = 1.0 + 1e-5


class ScaledSpectralNorm(nn.Module):
    r"""Parametrisation :math:`W = \gamma V / \|V\|_2` (exact spectral norm), so :math:`\|W\|_2 = \gamma`."""

    def __init__(self, gamma: float):
        super().__init__()
        self.gamma = gamma

    def forward(self, V: Tensor) -> Tensor:
        return self.gamma * V / torch.linalg.matrix_norm(V, ord=2).clamp_min(1e-12)


class GCNBlock(nn.Module):
    r"""GCN convolution (Kipf & Welling, 2017) as one sparse product:
    :math:`z' = \hat A\, \mathrm{dropout}(z) W^\top + b`, :math:`\hat A = \hat D^{-1/2}(A + I)\hat D^{-1/2}`.

    The same maths, initialisation and parameter names as torch-geometric's ``GCNConv``; ``dropout`` acts on the
    input (through CSR products when the input is sparse, see :mod:`fixpt.models.dropout`).
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0, sparse_input: bool = False):
        super().__init__()
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        nn.init.xavier_uniform_(self.lin.weight)  # glorot, as GCNConv (nn.Linear's default is narrower)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.dropout, self.sparse_input = dropout, sparse_input

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        A_hat = propagation_matrix(edge_index, x.size(0), "gcn")
        x = _drop(x, self.dropout, self.training, self.sparse_input)
        return A_hat @ linear(x, self.lin.weight) + self.bias


class SAGEBlock(nn.Module):
    r"""GraphSAGE convolution (Hamilton et al., 2017):
    :math:`z' = M\, \mathrm{dropout}(z) W_l^\top + b + \mathrm{dropout}(z) W_r^\top` with the mean
    aggregator :math:`M = D^{-1}A` (``aggregation="mean"``: torch-geometric's ``SAGEConv``, whose
    initialisation, ``nn.Linear``'s, this shares) or the
    symmetric :math:`M = D^{-1/2} A D^{-1/2}` (``"sym"``, norm at most 1, used by ``--contractive``).
    """

    def __init__(self, in_channels: int, out_channels: int, aggregation: str = "mean", dropout: float = 0.0,
                 sparse_input: bool = False):
        super().__init__()
        self.lin_l = nn.Linear(in_channels, out_channels, bias=True)
        self.lin_r = nn.Linear(in_channels, out_channels, bias=False)
        self.aggregation, self.dropout, self.sparse_input = aggregation, dropout, sparse_input

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        M = propagation_matrix(edge_index, x.size(0), self.aggregation)
        x = _drop(x, self.dropout, self.training, self.sparse_input)  # one mask for both branches
        return M @ linear(x, self.lin_l.weight) + self.lin_l.bias + linear(x, self.lin_r.weight)


def _drop(x: Tensor, p: float, training: bool, sparse_input: bool) -> Tensor:
    """Dropout on a block's input; input features (``sparse_input``) may come back as a sparse matrix."""
    if sparse_input:
        return dropout_features(x, p, training)
    return dropout(x, p, training)


def make_block(backbone: str, dim: int, *, heads: int = 8, contractive: bool = False, gamma: float = 0.9,
               attn_dropout: float = 0.0, concat_heads: bool = True) -> nn.Module:
    """A square ``dim -> dim`` conv; ``contractive`` normalises its weights so that Lip(conv) <= gamma.
    GAT: ``heads`` heads of width ``dim / heads`` concatenated, or (``concat_heads=False``) of width ``dim`` averaged."""
    if backbone not in BACKBONES:
        raise FixptError(f"unknown backbone {backbone!r}; valid: {', '.join(BACKBONES)}")
    if backbone == "gat":
        if contractive:
            raise FixptError("--contractive needs backbone gcn or sage: GAT's attention has no global Lipschitz bound")
        if not concat_heads:
            return GATBlock(dim, dim, heads=heads, dropout=attn_dropout, concat=False)
        if dim % heads:
            raise FixptError(f"hidden={dim} must be divisible by heads={heads} for the GAT block")
        return GATBlock(dim, dim // heads, heads=heads, dropout=attn_dropout)
    if backbone == "gcn":
        conv = GCNBlock(dim, dim)
        if contractive:
            parametrize.register_parametrization(conv.lin, "weight", ScaledSpectralNorm(gamma))
        return conv
    if contractive:  # sage: ||W_r|| + ||W_l|| <= gamma with the norm-1 symmetric propagation
        conv = SAGEBlock(dim, dim, aggregation="sym")
        parametrize.register_parametrization(conv.lin_l, "weight", ScaledSpectralNorm(gamma / 2))
        parametrize.register_parametrization(conv.lin_r, "weight", ScaledSpectralNorm(gamma / 2))
        return conv
    return SAGEBlock(dim, dim)


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
    if isinstance(conv, GCNBlock):
        return spectral_norm(conv.lin.weight), "||W||_2 * ||A_hat||_2 (=1, symmetric normalised) * Lip(ReLU)=1"
    if isinstance(conv, SAGEBlock) and conv.aggregation == "sym":
        return (spectral_norm(conv.lin_r.weight) + spectral_norm(conv.lin_l.weight),
                "||W_r||_2 + ||D^-1/2 A D^-1/2||_2 (<=1) * ||W_l||_2, times Lip(ReLU)=1")
    if isinstance(conv, SAGEBlock):
        m = mean_aggregation_norm_bound(edge_index, num_nodes)
        return (spectral_norm(conv.lin_r.weight) + m * spectral_norm(conv.lin_l.weight),
                f"||W_r||_2 + ||D^-1 A||_2 (<= sqrt(||M||_1 ||M||_inf) = {m:.3f}) * ||W_l||_2, times Lip(ReLU)=1")
    if isinstance(conv, GATBlock):
        return None, "GAT's attention coefficients depend on the features, so no global Lipschitz bound exists; local estimates only"
    return None, f"no bound known for {type(conv).__name__}"
