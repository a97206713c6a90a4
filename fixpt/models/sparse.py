r"""Sparse matrix products for graphs: propagation matrices and sparse input features.

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
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import degree

# CSR products have been stable for years; the beta notice and the invariant-check notice only confuse users
warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message=r"Sparse invariant checks are implicitly disabled")

PROPAGATIONS = ("gcn", "mean", "sym")
SPARSE_INPUT_DENSITY = 0.1  # below this fraction of non-zeros, input features go through CSR products


def row_pointers(rows: Tensor, n: int) -> Tensor:
    """CSR row pointers of sorted row indices: ``crow[i]`` is where row ``i`` starts."""
    crow = torch.zeros(n + 1, dtype=torch.long, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    return crow


class SparseMatrix:
    """A fixed sparse matrix ``M`` (CSR) with its transpose, multiplied by dense tensors with ``M @ x``."""

    def __init__(self, rows: Tensor, cols: Tensor, values: Tensor, shape: tuple[int, int]):
        order = torch.argsort(rows * shape[1] + cols)  # row-major: the CSR order
        self.rows, self.cols, self.values, self.shape = rows[order], cols[order], values[order], shape
        self._t_order = torch.argsort(self.cols * shape[0] + self.rows)  # the transpose's CSR order
        self.csr = torch.sparse_csr_tensor(row_pointers(self.rows, shape[0]), self.cols, self.values, shape)
        tcols, trows = self.rows[self._t_order], self.cols[self._t_order]
        self.csr_t = torch.sparse_csr_tensor(row_pointers(trows, shape[1]), tcols, self.values[self._t_order], (shape[1], shape[0]))

    @classmethod
    def from_dense(cls, x: Tensor) -> "SparseMatrix":
        rows, cols = x.nonzero(as_tuple=True)
        return cls(rows, cols, x[rows, cols], tuple(x.shape))

    def with_values(self, values: Tensor) -> "SparseMatrix":
        """The same sparsity pattern with new values (in this matrix's row-major order)."""
        out = SparseMatrix.__new__(SparseMatrix)
        out.rows, out.cols, out.shape, out._t_order, out.values = self.rows, self.cols, self.shape, self._t_order, values
        out.csr = torch.sparse_csr_tensor(self.csr.crow_indices(), self.csr.col_indices(), values, self.shape)
        out.csr_t = torch.sparse_csr_tensor(self.csr_t.crow_indices(), self.csr_t.col_indices(), values[self._t_order],
                                            (self.shape[1], self.shape[0]))
        return out

    def t(self) -> "SparseMatrix":
        out = SparseMatrix.__new__(SparseMatrix)
        out.shape, out.csr, out.csr_t = (self.shape[1], self.shape[0]), self.csr_t, self.csr
        return out

    def to_dense(self) -> Tensor:
        return self.csr.to_dense()

    def __matmul__(self, x: Tensor) -> Tensor:
        return _SparseMatmul.apply(self, x)


class _SparseMatmul(torch.autograd.Function):
    """``M @ x`` for a constant sparse ``M``; the backward and forward-mode rules call it again,
    so they nest under ``torch.func`` transforms."""

    @staticmethod
    def forward(m: SparseMatrix, x: Tensor) -> Tensor:
        csr = m.csr if m.csr.dtype == x.dtype else m.csr.to(x.dtype)  # float64 only in numerical tests
        return csr @ x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.m = inputs[0]

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, _SparseMatmul.apply(ctx.m.t(), grad)

    @staticmethod
    def jvp(ctx, _, x_dot: Tensor) -> Tensor:
        return _SparseMatmul.apply(ctx.m, x_dot)


def propagation_matrix(edge_index: Tensor, num_nodes: int, kind: str) -> SparseMatrix:
    """The propagation matrix ``kind`` of a graph, cached on the ``edge_index`` tensor."""
    cache = edge_index.__dict__.setdefault("_fixpt_propagation", {})
    key = (kind, num_nodes, edge_index._version)
    if key not in cache:
        with torch._C._DisableFuncTorch():  # may first be needed inside torch.func.jvp; the matrix is a constant
            cache[key] = _build_propagation(edge_index, num_nodes, kind)
    return cache[key]


def _build_propagation(edge_index: Tensor, num_nodes: int, kind: str) -> SparseMatrix:
    if kind in ("gcn", "sym"):
        ei, w = gcn_norm(edge_index, None, num_nodes, add_self_loops=(kind == "gcn"))
        src, dst = ei
    elif kind == "mean":
        src, dst = edge_index
        w = 1.0 / degree(dst, num_nodes).clamp_min(1)[dst]
    else:
        raise ValueError(f"unknown propagation {kind!r}; valid: {', '.join(PROPAGATIONS)}")
    coo = torch.sparse_coo_tensor(torch.stack([dst, src]), w.float(), (num_nodes, num_nodes)).coalesce()  # sums duplicates
    rows, cols = coo.indices()
    return SparseMatrix(rows, cols, coo.values(), (num_nodes, num_nodes))


def sparse_features(x: Tensor) -> SparseMatrix | None:
    """``x`` as a :class:`SparseMatrix` when fewer than 10 % of its entries are non-zero (cached on ``x``)."""
    if x.dim() != 2 or x.requires_grad:
        return None
    cache = x.__dict__.setdefault("_fixpt_sparse", {})
    if x._version not in cache:
        nnz = int(torch.count_nonzero(x))
        cache.clear()
        with torch._C._DisableFuncTorch():
            cache[x._version] = SparseMatrix.from_dense(x) if nnz < SPARSE_INPUT_DENSITY * x.numel() else None
    return cache[x._version]
