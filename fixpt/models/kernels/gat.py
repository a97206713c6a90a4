r"""Graph attention's aggregation as one CSR product (the fast backend of :class:`~fixpt.models.gat.GATBlock`).

.. math::
    e_{ij}^k = \mathrm{LeakyReLU}\big(a_{dst}^k \cdot h_i^k + a_{src}^k \cdot h_j^k\big), \qquad
    \alpha_{ij}^k = \operatorname{softmax}_{j \in N(i) \cup \{i\}} e_{ij}^k, \qquad
    x_i'^{\,k} = \sum_{j} \mathrm{dropout}(\alpha_{ij}^k)\, h_j^k

The weighted sum over neighbours for all heads is one product with a block-diagonal CSR matrix
whose values are the attention coefficients, instead of materialising an ``(edges, heads,
channels)`` message tensor; its backward gives :math:`\partial/\partial h` as the transposed
product and :math:`\partial/\partial \alpha_{ij}^k = g_i^k \cdot h_j^k` on the edges only (a
sampled dense-dense product). Forward-mode (``torch.func.jvp``) and ``vmap`` (a batch of seeds is
more heads) work through the same functions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import add_self_loops, remove_self_loops

from .csr import csr_tensor, row_pointers
from .dropout import dropout


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


def attention(g: AttentionGraph, h: Tensor, att_src: Tensor, att_dst: Tensor, negative_slope: float,
              p: float, training: bool) -> Tensor:
    """``x'[i, k] = sum_j dropout(alpha[k, i, j]) h[j, k]`` for ``h`` of shape (N, H, C) (module docstring)."""
    n, heads = h.shape[0], h.shape[1]
    a_src, a_dst = (h * att_src).sum(-1), (h * att_dst).sum(-1)  # (N, H)
    e = F.leaky_relu(a_src.index_select(0, g.src) + a_dst.index_select(0, g.dst), negative_slope)  # (edges, H)
    # softmax over each target's incoming edges; the shift by the (constant) maximum is exact
    peak = torch.full((n, heads), -torch.inf, dtype=e.dtype, device=e.device)
    peak = peak.scatter_reduce(0, g.dst[:, None].expand_as(e), e.detach(), "amax")
    w = torch.exp(e - peak.index_select(0, g.dst))
    alpha = w / torch.zeros_like(peak).index_add(0, g.dst, w).index_select(0, g.dst)
    alpha = dropout(alpha, p, training)
    return _Aggregate.apply(g, alpha, h, False)  # (N, H, C)


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
        A = csr_tensor(t_crow if transpose else crow, t_col if transpose else col,
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
        pattern = csr_tensor(crow, col, torch.zeros(col.numel(), dtype=h.dtype, device=h.device), (heads * n, heads * n))
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
