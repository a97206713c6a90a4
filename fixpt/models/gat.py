r"""Graph attention (Velickovic et al., 2018) with the aggregation as one CSR product.

.. math::
    h = x W^\top \in \mathbb{R}^{N \times H \times C}, \qquad
    e_{ij}^k = \mathrm{LeakyReLU}_{0.2}\big(a_{dst}^k \cdot h_i^k + a_{src}^k \cdot h_j^k\big), \qquad
    \alpha_{ij}^k = \operatorname{softmax}_{j \in N(i) \cup \{i\}} e_{ij}^k,

    x_i'^{\,k} = \sum_{j} \mathrm{dropout}(\alpha_{ij}^k)\, h_j^k, \qquad
    x_i' = \big\Vert_{k=1}^{H} x_i'^{\,k} + b \quad (\text{heads concatenated}) \qquad\text{or}\qquad
    x_i' = \tfrac{1}{H} \textstyle\sum_{k=1}^{H} x_i'^{\,k} + b \quad (\text{averaged, } \texttt{concat=False})

The same maths, initialisation and parameter names as torch-geometric's ``GATConv`` (self-loops
replaced by one per node; checked to agree in ``tests/test_gat.py``). The weighted sum over
neighbours for all heads is one product with a block-diagonal CSR matrix whose values are the
attention coefficients, instead of materialising an ``(edges, heads, channels)`` message tensor;
its backward gives :math:`\partial/\partial h` as the transposed product and
:math:`\partial/\partial \alpha_{ij}^k = g_i^k \cdot h_j^k` on the edges only. Forward-mode
(``torch.func.jvp``) works through the same function.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import add_self_loops, remove_self_loops

from .dropout import dropout, linear
from .sparse import row_pointers


class AttentionGraph:
    """The edge structure of a graph with one self-loop per node, in CSR order (by target, then source),
    and the block-diagonal CSR layout of ``heads`` copies of it."""

    def __init__(self, edge_index: Tensor, num_nodes: int):
        ei, _ = remove_self_loops(edge_index)
        ei, _ = add_self_loops(ei, num_nodes=num_nodes)
        src, dst = ei
        order = torch.argsort(dst * num_nodes + src)
        self.src, self.dst, self.num_nodes = src[order], dst[order], num_nodes
        self.t_order = torch.argsort(self.src * num_nodes + self.dst)  # CSR order of the transpose
        self._layouts: dict[int, tuple] = {}

    def layout(self, heads: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(crow, col) of the block-diagonal matrix and of its transpose, for ``heads`` blocks."""
        if heads not in self._layouts:
            n, nnz = self.num_nodes, self.src.numel()
            offs = (torch.arange(heads, device=self.src.device) * n).repeat_interleave(nnz)
            rows, cols = self.dst.repeat(heads) + offs, self.src.repeat(heads) + offs
            t_rows, t_cols = self.src[self.t_order].repeat(heads) + offs, self.dst[self.t_order].repeat(heads) + offs
            self._layouts[heads] = (row_pointers(rows, heads * n), cols, row_pointers(t_rows, heads * n), t_cols)
        return self._layouts[heads]


def attention_graph(edge_index: Tensor, num_nodes: int) -> AttentionGraph:
    """:class:`AttentionGraph` of ``edge_index``, cached on the tensor."""
    cache = edge_index.__dict__.setdefault("_fixpt_attention", {})
    key = (num_nodes, edge_index._version)
    if key not in cache:
        with torch._C._DisableFuncTorch():
            cache[key] = AttentionGraph(edge_index, num_nodes)
    return cache[key]


def _as_heads(x: Tensor, bdim: int | None, batch: int, head_dim: int) -> Tensor:
    """Fold a vmap batch dimension into the heads: ``(..., H, ...)`` per batch entry -> ``(..., B H, ...)``,
    batch-major (head ``b H + k`` is head ``k`` of entry ``b``); an unbatched ``x`` is repeated."""
    x = x.unsqueeze(head_dim) if bdim is None else x.movedim(bdim, head_dim)
    x = x.expand(*x.shape[:head_dim], batch, *x.shape[head_dim + 1:])
    return x.flatten(head_dim, head_dim + 1)


class _Aggregate(torch.autograd.Function):
    """``out[i, k] = sum_j alpha[e(i, j), k] h[j, k]`` (``transpose``: the sum runs over targets instead)."""

    @staticmethod
    def forward(graph: AttentionGraph, alpha: Tensor, h: Tensor, transpose: bool) -> Tensor:
        n, heads, c = h.shape
        crow, col, t_crow, t_col = graph.layout(heads)
        values = alpha[graph.t_order] if transpose else alpha
        A = torch.sparse_csr_tensor(t_crow if transpose else crow, t_col if transpose else col,
                                    values.t().reshape(-1), (heads * n, heads * n))
        return (A @ h.transpose(0, 1).reshape(heads * n, c)).reshape(heads, n, c).transpose(0, 1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        graph, alpha, h, transpose = inputs
        ctx.graph, ctx.transpose = graph, transpose
        ctx.save_for_backward(alpha, h)
        ctx.save_for_forward(alpha, h)

    @staticmethod
    def backward(ctx, grad: Tensor):
        alpha, h = ctx.saved_tensors
        g = ctx.graph
        d_alpha = _EdgeDot.apply(g, grad, h, ctx.transpose) if ctx.needs_input_grad[1] else None  # on the edges only
        d_h = _Aggregate.apply(g, alpha, grad, not ctx.transpose) if ctx.needs_input_grad[2] else None
        return None, d_alpha, d_h, None

    @staticmethod
    def vmap(info, in_dims, graph: AttentionGraph, alpha: Tensor, h: Tensor, transpose: bool):
        """A batch (the seeds of a seed-batched model) is more heads: ``B`` batches of ``H`` heads are ``B H`` heads."""
        B = info.batch_size
        alpha, h = _as_heads(alpha, in_dims[1], B, 1), _as_heads(h, in_dims[2], B, 1)
        out = _Aggregate.apply(graph, alpha, h, transpose)
        return out.unflatten(1, (B, -1)), 1

    @staticmethod
    def jvp(ctx, _, alpha_dot, h_dot, __):
        alpha, h = ctx.saved_tensors
        out = None
        if alpha_dot is not None:
            out = _Aggregate.apply(ctx.graph, alpha_dot, h, ctx.transpose)
        if h_dot is not None:
            term = _Aggregate.apply(ctx.graph, alpha, h_dot, ctx.transpose)
            out = term if out is None else out + term
        return out


class _EdgeDot(torch.autograd.Function):
    """``d[e, k] = grad[i, k] . h[j, k]`` for every edge ``e = (j -> i)`` (``transpose``: ``grad[j] . h[i]``),
    a sampled dense-dense product, in the edges' CSR order."""

    @staticmethod
    def forward(graph: AttentionGraph, grad: Tensor, h: Tensor, transpose: bool) -> Tensor:
        n, heads, c = h.shape
        crow, col, t_crow, t_col = graph.layout(heads)
        pattern = torch.sparse_csr_tensor(crow, col, torch.zeros(col.numel(), dtype=h.dtype, device=h.device),
                                          (heads * n, heads * n))
        left, right = (h, grad) if transpose else (grad, h)  # transposed: the same pattern with the roles swapped
        values = torch.sparse.sampled_addmm(pattern, left.transpose(0, 1).reshape(heads * n, c),
                                            right.transpose(0, 1).reshape(heads * n, c).t(), beta=0.0).values()
        return values.view(heads, -1).t()

    @staticmethod
    def setup_context(ctx, inputs, output):
        graph, grad, h, transpose = inputs
        ctx.graph, ctx.transpose = graph, transpose
        ctx.save_for_backward(grad, h)

    @staticmethod
    def vmap(info, in_dims, graph: AttentionGraph, grad: Tensor, h: Tensor, transpose: bool):
        B = info.batch_size
        out = _EdgeDot.apply(graph, _as_heads(grad, in_dims[1], B, 1), _as_heads(h, in_dims[2], B, 1), transpose)
        return out.unflatten(1, (B, -1)), 1

    @staticmethod
    def backward(ctx, w: Tensor):  # only for second derivatives
        grad, h = ctx.saved_tensors
        d_grad = _Aggregate.apply(ctx.graph, w, h, ctx.transpose)
        d_h = _Aggregate.apply(ctx.graph, w, grad, not ctx.transpose)
        return None, d_grad, d_h, None


class GATBlock(nn.Module):
    """Multi-head graph attention: ``in_channels -> heads * out_channels`` with the heads concatenated,
    or ``in_channels -> out_channels`` with ``concat=False`` (the heads averaged, as ``GATConv(concat=False)``)."""

    def __init__(self, in_channels: int, out_channels: int, heads: int = 1, dropout: float = 0.0,
                 negative_slope: float = 0.2, concat: bool = True):
        super().__init__()
        self.heads, self.out_channels, self.dropout, self.negative_slope = heads, out_channels, dropout, negative_slope
        self.concat = concat
        self.lin = nn.Linear(in_channels, heads * out_channels, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        self.bias = nn.Parameter(torch.empty(heads * out_channels if concat else out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in (self.lin.weight, self.att_src, self.att_dst):  # glorot, as torch-geometric
            bound = math.sqrt(6.0 / (p.size(-2) + p.size(-1)))
            nn.init.uniform_(p, -bound, bound)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        n = x.shape[0]
        g = attention_graph(edge_index, n)
        h = linear(x, self.lin.weight).view(n, self.heads, self.out_channels)  # x may be sparse input features
        a_src, a_dst = (h * self.att_src).sum(-1), (h * self.att_dst).sum(-1)  # (N, H)
        e = F.leaky_relu(a_src.index_select(0, g.src) + a_dst.index_select(0, g.dst), self.negative_slope)  # (edges, H)
        # softmax over each target's incoming edges; the shift by the (constant) maximum is exact
        peak = torch.full((n, self.heads), -torch.inf, dtype=e.dtype, device=e.device)
        peak = peak.scatter_reduce(0, g.dst[:, None].expand_as(e), e.detach(), "amax")
        w = torch.exp(e - peak.index_select(0, g.dst))
        alpha = w / torch.zeros_like(peak).index_add(0, g.dst, w).index_select(0, g.dst)
        alpha = dropout(alpha, self.dropout, self.training)
        out = _Aggregate.apply(g, alpha, h, False)  # (N, H, C)
        if not self.concat:
            return out.mean(1) + self.bias
        return out.reshape(n, self.heads * self.out_channels) + self.bias

    def extra_repr(self) -> str:
        return (f"{self.lin.in_features}, {self.out_channels}, heads={self.heads}, dropout={self.dropout}"
                + ("" if self.concat else ", concat=False"))
