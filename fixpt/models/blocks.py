r"""GNN blocks (GCN, GraphSAGE and GAT, in the kernel backend chosen when built: CSR products or torch-geometric), their spectral normalisation and their certified Lipschitz bounds.

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

``pyg:NAME`` (:class:`PyGBlock`) iterates any ``torch_geometric.nn`` convolution, always through
torch-geometric (the reference backend, :mod:`fixpt.models.kernels.pyg`): slower than the CSR
blocks, no seed batches, and no certified bound (``check-contraction`` gives empirical estimates).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch_geometric.nn import GCNConv, SAGEConv
from torch_geometric.utils import degree, is_undirected

from ..errors import FixptError
from . import kernels
from .dropout import Dropout
from .gat import GATBlock
from .kernels import Graph, SparseMatrix
from .kernels.pyg import PREFIX, PyGConv

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
    r"""GCN convolution (Kipf & Welling, 2017):
    :math:`z' = \hat A\, \mathrm{dropout}(z) W^\top + b`, :math:`\hat A = \hat D^{-1/2}(A + I)\hat D^{-1/2}`.

    The same maths, initialisation and parameter names as torch-geometric's ``GCNConv``, which is the
    reference backend; the fast one is one CSR product (:mod:`fixpt.models.kernels.csr`). ``dropout``
    acts on the input (on the non-zeros only when the input is a sparse matrix, see :mod:`fixpt.models.dropout`).

    Shapes: ``x`` (N, in_channels) or a sparse matrix (fast backend), ``graph`` a
    :class:`~fixpt.models.kernels.Graph` or an ``edge_index`` (2, E) -> (N, out_channels).
    """

    graph_needs = ("gcn",)  # what it asks of a Graph

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0, backend: str | None = None):
        super().__init__()
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        nn.init.xavier_uniform_(self.lin.weight)  # glorot, as GCNConv (nn.Linear's default is narrower)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.backend = kernels.backend(backend)
        self.drop = Dropout(dropout, self.backend)
        if self.backend == "reference":
            self.reference = kernels.ReferenceConv(lambda: GCNConv(in_channels, out_channels))

    def forward(self, x: Tensor | SparseMatrix, graph: Graph | Tensor) -> Tensor:
        graph = kernels.as_graph(graph, x.shape[0], self.graph_needs, self.backend)
        x = self.drop(x)
        if self.backend == "reference":
            return self.reference(self, x, graph.edge_index)
        return graph.propagation("gcn") @ kernels.linear(x, self.lin.weight) + self.bias


class SAGEBlock(nn.Module):
    r"""GraphSAGE convolution (Hamilton et al., 2017):
    :math:`z' = M\, \mathrm{dropout}(z) W_l^\top + b + \mathrm{dropout}(z) W_r^\top` with the mean
    aggregator :math:`M = D^{-1}A` (``aggregation="mean"``: torch-geometric's ``SAGEConv``, whose
    initialisation, ``nn.Linear``'s, this shares) or the
    symmetric :math:`M = D^{-1/2} A D^{-1/2}` (``"sym"``, norm at most 1, used by ``--contractive``).

    The reference backend runs ``SAGEConv`` (mean), or ``GCNConv`` without self-loops for
    :math:`M W_l^\top` (sym); the fast one is CSR products. Shapes as :class:`GCNBlock`.
    """

    def __init__(self, in_channels: int, out_channels: int, aggregation: str = "mean", dropout: float = 0.0,
                 backend: str | None = None):
        super().__init__()
        self.lin_l = nn.Linear(in_channels, out_channels, bias=True)
        self.lin_r = nn.Linear(in_channels, out_channels, bias=False)
        self.aggregation, self.backend = aggregation, kernels.backend(backend)
        self.drop = Dropout(dropout, self.backend)
        self.graph_needs = (aggregation,)
        if self.backend == "reference" and aggregation == "mean":
            self.reference = kernels.ReferenceConv(lambda: SAGEConv(in_channels, out_channels))
        elif self.backend == "reference":  # M x W_l^T, M = D^-1/2 A D^-1/2: GCN's normalisation without self-loops
            self.reference = kernels.ReferenceConv(lambda: GCNConv(in_channels, out_channels, add_self_loops=False, bias=False),
                                                   names={"lin.weight": "lin_l.weight"})

    def forward(self, x: Tensor | SparseMatrix, graph: Graph | Tensor) -> Tensor:
        graph = kernels.as_graph(graph, x.shape[0], self.graph_needs, self.backend)
        x = self.drop(x)  # one mask for both branches
        if self.backend == "reference" and self.aggregation == "mean":
            return self.reference(self, x, graph.edge_index)
        if self.backend == "reference":
            return self.reference(self, x, graph.edge_index) + self.lin_l.bias + F.linear(x, self.lin_r.weight)
        M = graph.propagation(self.aggregation)
        return M @ kernels.linear(x, self.lin_l.weight) + self.lin_l.bias + kernels.linear(x, self.lin_r.weight)


class PyGBlock(nn.Module):
    """Any torch-geometric convolution ``pyg:NAME`` as a ``in_dim -> dim`` block (square unless ``in_dim`` is given:
    the first or last layer of a plain GNN), built by :func:`~fixpt.models.kernels.pyg.build_conv` (widths filled in,
    a default MLP for GIN-style convs, ``block_kwargs`` for the rest). Always the reference backend:
    torch-geometric's own message passing.

    Shapes: ``x`` (N, in_dim), dense or a :class:`~fixpt.models.kernels.csr.SparseMatrix` (sparse input
    features, made dense here), ``graph`` a :class:`~fixpt.models.kernels.Graph` (its edge weights or attributes
    passed where the conv takes them) or an ``edge_index`` (2, E) -> (N, dim).
    """

    graph_needs = ()
    backend = "reference"  # no vmap rules: seed batches refuse it (fixpt.models.base.seed_batch_mode)

    def __init__(self, name: str, dim: int, block_kwargs: dict | None = None, in_dim: int | None = None):
        super().__init__()
        self.name = name
        self.pyg = PyGConv(name, dim, block_kwargs, in_dim)

    def forward(self, x: Tensor | SparseMatrix, graph: Graph | Tensor) -> Tensor:
        x = x.to_dense() if isinstance(x, SparseMatrix) else x
        graph = kernels.as_graph(graph, x.shape[0], self.graph_needs, self.backend)
        return self.pyg(x, graph.edge_index, graph.edge_features)


def is_pyg(backbone: str) -> bool:
    """Whether ``backbone`` names a torch-geometric convolution (``pyg:NAME``)."""
    return backbone.startswith(PREFIX)


def make_block(backbone: str, dim: int, *, heads: int = 8, contractive: bool = False, gamma: float = 0.9,
               attn_dropout: float = 0.0, concat_heads: bool = True, backend: str | None = None,
               block_kwargs: dict | None = None, aggregation: str | None = None) -> nn.Module:
    r"""A square ``dim -> dim`` conv; ``contractive`` normalises its weights so that Lip(conv) <= gamma.
    SAGE: ``aggregation`` ``mean`` (:math:`D^{-1}A`, the default) or ``sym`` (:math:`D^{-1/2}AD^{-1/2}`, the default
    with ``contractive``); contractive sym is bounded in the Euclidean norm, contractive mean in the degree norm
    :math:`\|D^{1/2}z\|_2` on undirected graphs (:func:`block_lipschitz_bound`).
    GAT: ``heads`` heads of width ``dim / heads`` concatenated, or (``concat_heads=False``) of width ``dim`` averaged.
    ``pyg:NAME``: that torch-geometric convolution (:class:`PyGBlock`), built with ``block_kwargs``.
    ``backend``: the kernels (default: :func:`fixpt.models.kernels.backend`)."""
    if is_pyg(backbone):
        if contractive:
            raise FixptError(f"--contractive needs backbone gcn or sage: fixpt cannot normalise {backbone} to a proven Lipschitz bound")
        return PyGBlock(backbone.removeprefix(PREFIX), dim, block_kwargs)
    if block_kwargs:
        raise FixptError(f"block_kwargs configure pyg: backbones only; backbone {backbone!r} takes none (leave it empty)")
    if aggregation is not None and backbone != "sage":
        raise FixptError(f"aggregation is a sage option; backbone {backbone!r} takes none (leave it unset)")
    if backbone not in BACKBONES:
        raise FixptError(f"unknown backbone {backbone!r}; valid: {', '.join(BACKBONES)}, or pyg:<a torch_geometric.nn conv> (e.g. pyg:GINConv)")
    if backbone == "gat":
        if contractive:
            raise FixptError("--contractive needs backbone gcn or sage: GAT's attention has no global Lipschitz bound")
        if not concat_heads:
            return GATBlock(dim, dim, heads=heads, dropout=attn_dropout, concat=False, backend=backend)
        if dim % heads:
            raise FixptError(f"hidden={dim} must be divisible by heads={heads} for the GAT block")
        return GATBlock(dim, dim // heads, heads=heads, dropout=attn_dropout, backend=backend)
    if backbone == "gcn":
        conv = GCNBlock(dim, dim, backend=backend)
        if contractive:
            parametrize.register_parametrization(conv.lin, "weight", ScaledSpectralNorm(gamma))
        return conv
    conv = SAGEBlock(dim, dim, aggregation=aggregation or ("sym" if contractive else "mean"), backend=backend)
    if contractive:  # sage: ||W_r|| + ||W_l|| <= gamma, the propagation of norm 1 (sym: Euclidean; mean: degree norm)
        parametrize.register_parametrization(conv.lin_l, "weight", ScaledSpectralNorm(gamma / 2))
        parametrize.register_parametrization(conv.lin_r, "weight", ScaledSpectralNorm(gamma / 2))
    return conv


BLOCK_INITS = ("default", "identity")


def identity_init(block: nn.Module, gain: float) -> None:
    r"""Start ``block`` as the graph's propagation scaled by ``gain``: :math:`T(z) = \mathrm{ReLU}(\gamma\, M z)`,
    the self weight and the biases zero (``--block-init identity``).

    * SAGE: :math:`W_l = \gamma I`, :math:`W_r = 0`, so :math:`T(z) = \mathrm{ReLU}(\gamma M z)`;
    * GCN: :math:`W = \gamma I`, so :math:`T(z) = \mathrm{ReLU}(\gamma \hat A z)`;
    * GAT: every head's :math:`W` is :math:`\gamma I` on its slice (concatenated heads) or on all channels (averaged
      heads), so :math:`T` averages the neighbours with the attention weights; the attention vectors keep their
      glorot draw.

    The propagations have norm 1 in their state norm (SAGE mean: the degree norm; GCN: the Euclidean one) and
    ReLU is 1-Lipschitz, so the block starts with :math:`\mathrm{Lip}(T) \le \gamma` there, and the
    fixed point of :math:`z = T(z) + f` with :math:`f \ge 0` is personalised PageRank's
    :math:`(I - \gamma M)^{-1} f`: the block averages the neighbourhood from the first epoch."""
    if isinstance(block, SAGEBlock):
        weight, bias, zeroed = block.lin_l.weight, block.lin_l.bias, [block.lin_r.weight]
    elif isinstance(block, (GCNBlock, GATBlock)):
        weight, bias, zeroed = block.lin.weight, block.bias, []
    else:
        raise FixptError(f"--block-init identity needs backbone gcn, gat or sage; {type(block).__name__} has no such start")
    out_dim, in_dim = weight.shape  # out = in, or heads * in for GAT's averaged heads (one identity a head)
    with torch.no_grad():
        weight.copy_(gain * torch.eye(in_dim, dtype=weight.dtype).repeat(out_dim // in_dim, 1))
        for p in [bias, *zeroed]:
            p.zero_()


def spectral_norm(weight: Tensor) -> float:
    return float(torch.linalg.matrix_norm(weight.detach().double(), ord=2)) * ROUNDING


def node_degree(edge_index: Tensor, num_nodes: int) -> Tensor:
    """:math:`d_i`: the messages node i aggregates (edges into it; messages flow source -> target), at least 1."""
    return degree(edge_index[1], num_nodes).clamp_min(1)


def mean_aggregation_norm_bound(edge_index: Tensor, num_nodes: int) -> float:
    r""":math:`\sqrt{\|M\|_1 \|M\|_\infty}` for :math:`M = D^{-1} A` (messages flow source -> target)."""
    src, dst = edge_index
    deg = node_degree(edge_index, num_nodes)
    col_sums = torch.zeros(num_nodes, dtype=torch.float64, device=edge_index.device).index_add_(0, src, (1.0 / deg[dst]).double())
    row_max = 1.0 if edge_index.numel() else 0.0
    return float(torch.sqrt(col_sums.max() * row_max)) * ROUNDING if edge_index.numel() else 0.0


def block_lipschitz_bound(conv: nn.Module, edge_index: Tensor, num_nodes: int, norm: str = "l2") -> tuple[float | None, str]:
    """Certified upper bound on Lip(z -> ReLU(conv(z))) in the state norm ``norm`` and how it was obtained."""
    if norm == "degree":
        return _degree_norm_bound(conv, edge_index, num_nodes)
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
    if isinstance(conv, PyGBlock):
        return None, f"a generic torch-geometric convolution ({conv.name}) provides no certified bound; empirical estimates only"
    return None, f"no bound known for {type(conv).__name__}"


def _degree_norm_bound(conv: nn.Module, edge_index: Tensor, num_nodes: int) -> tuple[float | None, str]:
    r"""The bound in the norm :math:`\|z\|_S = \|D^{1/2} z\|_2` (``--state-norm degree``). ReLU commutes with the
    positive diagonal :math:`S`, so :math:`\mathrm{Lip}_S \le \|W_r\|_2 + \|S M S^{-1}\|_2 \|W_l\|_2`, and for mean
    aggregation :math:`S D^{-1} A S^{-1} = D^{-1/2} A D^{-1/2}`, of norm at most 1 when :math:`A` is symmetric."""
    if isinstance(conv, SAGEBlock) and conv.aggregation == "mean":
        if not is_undirected(edge_index, num_nodes=num_nodes):
            return None, "the graph is directed, so D^-1/2 A D^-1/2 has no norm-1 bound; empirical estimates only"
        return (spectral_norm(conv.lin_r.weight) + spectral_norm(conv.lin_l.weight),
                "||W_r||_2 + ||D^-1/2 A D^-1/2||_2 (<=1, A symmetric) * ||W_l||_2, times Lip(ReLU)=1, in ||D^1/2 z||")
    return None, f"no bound in the degree norm for {type(conv).__name__} (only SAGE with mean aggregation has one); empirical estimates only"
