r"""Dropout for graph models: masks from random bits, and masks for sparse inputs such as bag-of-words features.

:func:`dropout` is the dropout of every graph model (features, hidden layers, attention). It draws
its masks from random 64-bit words cut into four 16-bit lanes, an entry being kept when its lane
is below :math:`k = \operatorname{round}((1 - p) 2^{16})`, and scales kept entries by
:math:`2^{16} / k`; so the keep probability is :math:`k / 2^{16}` (exactly :math:`1 - p` for
:math:`p = 0.5`, within :math:`2^{-17}` of it otherwise) and :math:`E[\mathrm{out}] = x` exactly.
On the CPU that is 3.5x faster than ``torch.nn.functional.dropout`` (whose Bernoulli draw
dominated a training step on noisy Cora; ``benchmarks/seed_batch.py``), and it works under
``torch.func.vmap`` with ``randomness="different"``.

Dropout multiplies every entry by an independent mask :math:`m_{ij} / (1 - p)`,
:math:`m_{ij} \sim \mathrm{Bernoulli}(1 - p)`. A zero entry stays zero whatever it draws, so drawing
masks for the non-zero entries alone gives the *same distribution* of outputs. On Cora
(2708 x 1433 features, 1.3 % non-zero) that is one draw per word instead of one per
(node, vocabulary) pair (the draw was a third of a dense training step). :func:`dropout_features`
keeps the kept entries in a :class:`~fixpt.models.sparse.SparseMatrix`, so the input layer is a
CSR product; dense inputs (e.g. after drop-in noise) get plain dropout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..solve import syncing
from .sparse import SparseMatrix, sparse_features


LANES = 1 << 16  # resolution of the keep probability


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Dropout of ``x`` with probability ``p`` from random bits (see the module docstring)."""
    if not training or p == 0.0:
        return x
    kept = round((1.0 - p) * LANES)
    if kept == 0:
        return torch.zeros_like(x)
    n = x.numel()
    words = torch.randint(-(1 << 63), (1 << 63) - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
    lanes = words.view(torch.int16)[:n].view(x.shape)  # uniform on [-2^15, 2^15)
    return x * ((lanes < kept - LANES // 2) * (LANES / kept))


class Dropout(nn.Module):
    """:func:`dropout` as a module (a drop-in for ``nn.Dropout``)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def dropout_features(x: Tensor, p: float, training: bool = True) -> Tensor | SparseMatrix:
    """Dropout on input features: a :class:`SparseMatrix` with masks on the non-zeros when ``x`` is
    sparse enough for CSR products (:func:`fixpt.models.sparse.sparse_features`), else plain dropout."""
    sparse = sparse_features(x)
    if sparse is None:  # dense features (e.g. after drop-in noise): one mask draw per entry is as cheap
        return dropout(x, p, training)
    if not training or p == 0.0:
        return sparse
    if p >= 1.0:
        return sparse.with_values(torch.zeros_like(sparse.values))
    kept = torch.rand(sparse.values.shape[0], device=x.device) >= p  # one draw per non-zero, row-major order
    return sparse.with_values(sparse.values * kept / (1.0 - p))


def linear(x: Tensor | SparseMatrix, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """:math:`x W^\\top + b` for a dense or sparse ``x``."""
    if isinstance(x, SparseMatrix):
        out = x @ weight.t()
        return out if bias is None else out + bias
    return F.linear(x, weight, bias)


class _InputProduct(torch.autograd.Function):
    r""":math:`X W^\top` for dense input features :math:`X`, with a vmap rule for seed batches: when the seeds
    share :math:`X` (no input dropout) and only :math:`W` is batched, the :math:`S` seeds' products are one
    wide product :math:`X [W_1; \dots; W_S]^\top` (``N x S H``) instead of :math:`S` narrow ones."""

    @staticmethod
    def forward(x: Tensor, weight: Tensor) -> Tensor:
        return x @ weight.t()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        return (grad @ weight if ctx.needs_input_grad[0] else None,
                grad.t() @ x if ctx.needs_input_grad[1] else None)

    @staticmethod
    def jvp(ctx, x_dot, w_dot):
        x, weight = ctx.saved_tensors
        out = None if x_dot is None else x_dot @ weight.t()
        if w_dot is not None:
            out = x @ w_dot.t() if out is None else out + x @ w_dot.t()
        return out

    @staticmethod
    def vmap(info, in_dims, x: Tensor, weight: Tensor):
        x_dim, w_dim = in_dims
        if x_dim is None and w_dim is not None:  # one X for every seed: one wide product
            w = weight.movedim(w_dim, 0)  # (S, H, F)
            S, H, F_in = w.shape
            return (x @ w.reshape(S * H, F_in).t()).view(x.shape[0], S, H), 1
        x = x.unsqueeze(0) if x_dim is None else x.movedim(x_dim, 0)
        w = weight.unsqueeze(0) if w_dim is None else weight.movedim(w_dim, 0)
        return torch.matmul(x, w.transpose(-1, -2)), 0


class InputLinear(nn.Linear):
    """``Linear(dropout(x))`` on input features, through CSR products when ``x`` is sparse, and through
    one wide product for a seed batch that shares dense features (:class:`_InputProduct`; seed batches
    run inside :func:`fixpt.solve.without_sync`, which is how the layer knows)."""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.p = dropout

    def forward(self, x: Tensor) -> Tensor:
        x = dropout_features(x, self.p, self.training)
        if isinstance(x, SparseMatrix) or syncing():  # a plain run: F.linear, as before seed batches existed
            return linear(x, self.weight, self.bias)
        out = _InputProduct.apply(x, self.weight)  # a seed batch (under vmap): one wide product
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return super().extra_repr() + f", dropout={self.p}"
