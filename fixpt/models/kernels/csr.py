r"""Sparse matrix products for graphs: propagation matrices and sparse input features (the fast backend).

Message passing on a fixed graph is a product with one sparse matrix,
:math:`\mathrm{out}_i = \sum_j M_{ij} x_j` (row ``i`` = target, column ``j`` = source), and a
bag-of-words feature matrix is itself sparse. Both are done here as one CSR product instead of
the gather / scatter of edge-wise messages, about 10x faster on Cora on the CPU
(``benchmarks/cora_run.py``). The propagation matrices:

.. math::
    \hat A = \hat D^{-1/2}(A + I)\hat D^{-1/2} \ (\texttt{gcn}), \qquad
    D^{-1} A \ (\texttt{mean}), \qquad D^{-1/2} A D^{-1/2} \ (\texttt{sym})

The product is an ``autograd.Function`` with a backward (:math:`M^\top g`) and a forward-mode
rule (:math:`M \dot x`), so training, ``torch.func.jvp`` / ``vjp`` (used by
:mod:`fixpt.contraction`) and double backward all work: each rule is again a sparse product.
The matrices are built once per graph by :class:`~fixpt.models.kernels.graph.Graph`.
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import degree

PROPAGATIONS = ("gcn", "mean", "sym")
SPARSE_INPUT_DENSITY = 0.1  # below this fraction of non-zeros, input features go through CSR products


def row_pointers(rows: Tensor, n: int) -> Tensor:
    """CSR row pointers of sorted row indices: ``crow[i]`` is where row ``i`` starts."""
    crow = torch.zeros(n + 1, dtype=torch.long, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    return crow


def csr_tensor(crow: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    """``torch.sparse_csr_tensor`` without its once-per-process beta notice (CSR products have been
    stable for years); the indices are built here, so the invariant checks are off explicitly."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


class SparseMatrix:
    """A fixed sparse matrix ``M`` (CSR) with its transpose, multiplied by dense tensors with ``M @ x``.

    The values may be replaced (:meth:`with_values`, e.g. by dropout masks) while the pattern is kept;
    they are constants to autograd. Under ``torch.func.vmap`` (seed-batched training,
    :mod:`fixpt.seed_batch`) the values, the dense factor or both may carry a batch dimension.
    """

    def __init__(self, rows: Tensor, cols: Tensor, values: Tensor, shape: tuple[int, int]):
        order = torch.argsort(rows * shape[1] + cols)  # row-major: the CSR order
        self.rows, self.cols, self.values, self.shape = rows[order], cols[order], values[order], tuple(shape)
        self._t_order = torch.argsort(self.cols * shape[0] + self.rows)  # the transpose's CSR order
        self.crow = row_pointers(self.rows, shape[0])
        self.t_crow, self.t_col = row_pointers(self.cols[self._t_order], shape[1]), self.rows[self._t_order]
        self._stacked: dict[tuple[int, bool], SparseMatrix] = {}

    @classmethod
    def from_dense(cls, x: Tensor) -> "SparseMatrix":
        rows, cols = x.nonzero(as_tuple=True)
        return cls(rows, cols, x[rows, cols], tuple(x.shape))

    def with_values(self, values: Tensor) -> "SparseMatrix":
        """The same sparsity pattern with new values (in this matrix's row-major order)."""
        out = copy.copy(self)
        out.values = values
        return out

    def csr(self, values: Tensor) -> Tensor:
        return csr_tensor(self.crow, self.cols, values, self.shape)

    def csr_t(self, values: Tensor) -> Tensor:
        return csr_tensor(self.t_crow, self.t_col, values[self._t_order], (self.shape[1], self.shape[0]))

    def to_dense(self) -> Tensor:
        return self.csr(self.values).to_dense()

    def t(self) -> "SparseMatrix":
        return SparseMatrix(self.cols, self.rows, self.values, (self.shape[1], self.shape[0]))

    def stacked(self, copies: int, diagonal: bool) -> "SparseMatrix":
        """``copies`` of this pattern stacked by rows (``diagonal=False``: ``[M_1; ...; M_B]``, shape
        ``(B R, C)``) or along the diagonal (``diag(M_1, ..., M_B)``, shape ``(B R, B C)``); block ``b``'s
        values are entries ``b * nnz ...`` of the stacked values, so a ``(B, nnz)`` batch flattens into them."""
        key = (copies, diagonal)
        if key not in self._stacked:
            r, c = self.shape
            offs = torch.arange(copies, device=self.rows.device).repeat_interleave(self.rows.numel())
            rows, cols = self.rows.repeat(copies) + offs * r, self.cols.repeat(copies) + (offs * c if diagonal else 0)
            ones = torch.ones(rows.numel(), device=rows.device)  # the pattern only: products pass their own values
            self._stacked[key] = SparseMatrix(rows, cols, ones, (copies * r, copies * c if diagonal else c))
        return self._stacked[key]

    def __matmul__(self, x: Tensor) -> Tensor:
        return _SparseMatmul.apply(self, self.values, x, False)


class _SparseMatmul(torch.autograd.Function):
    r"""``M @ x`` (``transpose``: ``M^T @ x``) for a sparse ``M`` with constant ``values``; the backward
    and forward-mode rules call it again, so they nest under ``torch.func`` transforms. The vmap rule
    turns a batch into one sparse product: a batch of ``x`` alone sits side by side in the columns,
    :math:`M [x_1, \dots, x_B] = [M x_1, \dots, M x_B]`; a batch of values uses the stacked
    patterns of :meth:`SparseMatrix.stacked` (block rows, or block diagonal when ``x`` is batched too)."""

    @staticmethod
    def forward(m: SparseMatrix, values: Tensor, x: Tensor, transpose: bool) -> Tensor:
        values = values.to(x.dtype)  # float64 only in numerical tests
        return (m.csr_t(values) if transpose else m.csr(values)) @ x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.m, ctx.values, _, ctx.transpose = inputs

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, None, _SparseMatmul.apply(ctx.m, ctx.values, grad, not ctx.transpose), None

    @staticmethod
    def jvp(ctx, _, values_dot, x_dot: Tensor, __) -> Tensor:
        return _SparseMatmul.apply(ctx.m, ctx.values, x_dot, ctx.transpose)

    @staticmethod
    def vmap(info, in_dims, m: SparseMatrix, values: Tensor, x: Tensor, transpose: bool):
        v_dim, x_dim = in_dims[1], in_dims[2]
        if v_dim is None and x_dim is None:
            return _SparseMatmul.apply(m, values, x, transpose), None
        if v_dim is None:  # one matrix, a batch of right-hand sides: columns side by side
            x = x.movedim(x_dim, 1)  # (C, B, ...)
            out = _SparseMatmul.apply(m, values, x.reshape(x.shape[0], -1), transpose)
            return out.reshape(out.shape[0], *x.shape[1:]), 1
        values = values.movedim(v_dim, 0)
        B = values.shape[0]
        rows = m.shape[1] if transpose else m.shape[0]
        if x_dim is None and not transpose:  # [M_1; ...; M_B] x
            out = _SparseMatmul.apply(m.stacked(B, diagonal=False), values.reshape(-1), x, False)
        else:  # diag(M_1, ..., M_B) [x_1; ...; x_B] (an unbatched x repeated: [M_1; ...]^T x would sum the blocks)
            x = x.unsqueeze(0).expand(B, *x.shape) if x_dim is None else x.movedim(x_dim, 0)
            out = _SparseMatmul.apply(m.stacked(B, diagonal=True), values.reshape(-1),
                                      x.reshape(B * x.shape[1], *x.shape[2:]), transpose)
        return out.reshape(B, rows, *out.shape[1:]), 0


def propagation_matrix(edge_index: Tensor, num_nodes: int, kind: str) -> SparseMatrix:
    """The propagation matrix ``kind`` (one of :data:`PROPAGATIONS`) of a graph; duplicate edges are summed."""
    if kind in ("gcn", "sym"):
        ei, w = gcn_norm(edge_index, None, num_nodes, add_self_loops=(kind == "gcn"))
        src, dst = ei
    elif kind == "mean":
        src, dst = edge_index
        w = 1.0 / degree(dst, num_nodes).clamp_min(1)[dst]
    else:
        raise ValueError(f"unknown propagation {kind!r}; valid: {', '.join(PROPAGATIONS)}")
    coo = torch.sparse_coo_tensor(torch.stack([dst, src]), w.float(), (num_nodes, num_nodes), check_invariants=False)
    coo = coo.coalesce()  # sums duplicates
    rows, cols = coo.indices()
    return SparseMatrix(rows, cols, coo.values(), (num_nodes, num_nodes))


def sparse_features(x: Tensor) -> SparseMatrix | None:
    """``x`` as a :class:`SparseMatrix` when fewer than 10 % of its entries are non-zero, else None
    (also for a ``x`` that needs its gradient, or is not a matrix)."""
    if x.dim() != 2 or x.requires_grad:
        return None
    nnz = int(torch.count_nonzero(x))
    return SparseMatrix.from_dense(x) if nnz < SPARSE_INPUT_DENSITY * x.numel() else None


def linear(x: Tensor | SparseMatrix, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    r""":math:`x W^\top + b` for a dense or sparse ``x``."""
    if isinstance(x, SparseMatrix):
        out = x @ weight.t()
        return out if bias is None else out + bias
    return F.linear(x, weight, bias)
