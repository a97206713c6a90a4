r"""Dropout for sparse inputs such as bag-of-words features.

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

from .sparse import SparseMatrix, sparse_features


def feature_dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Dropout drawing masks only where ``x`` is non-zero; plain dropout when ``x`` needs a gradient."""
    if not training or p == 0.0:
        return x
    if x.requires_grad or p >= 1.0:
        return F.dropout(x, p, training)
    flat = x.reshape(-1)
    nonzero = flat.nonzero().squeeze(1)  # (nnz,)
    kept = nonzero[torch.rand(nonzero.shape[0], device=x.device) >= p]
    out = torch.zeros_like(flat)
    out[kept] = flat[kept] / (1.0 - p)
    return out.reshape(x.shape)


class FeatureDropout(nn.Module):
    """:func:`feature_dropout` as a module (a drop-in for ``nn.Dropout`` on input features)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return feature_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def dropout_features(x: Tensor, p: float, training: bool = True) -> Tensor | SparseMatrix:
    """Dropout on input features: a :class:`SparseMatrix` with masks on the non-zeros when ``x`` is
    sparse enough for CSR products (:func:`fixpt.models.sparse.sparse_features`), else plain dropout."""
    sparse = sparse_features(x)
    if sparse is None:  # dense features (e.g. after drop-in noise): one mask draw per entry is as cheap
        return F.dropout(x, p, training) if p > 0 else x
    if not training or p == 0.0:
        return sparse
    kept = torch.rand(sparse.values.shape[0], device=x.device) >= p  # one draw per non-zero, row-major order
    return sparse.with_values(sparse.values * kept / (1.0 - p))


def linear(x: Tensor | SparseMatrix, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """:math:`x W^\\top + b` for a dense or sparse ``x``."""
    if isinstance(x, SparseMatrix):
        out = x @ weight.t()
        return out if bias is None else out + bias
    return F.linear(x, weight, bias)


class InputLinear(nn.Linear):
    """``Linear(dropout(x))`` on input features, through CSR products when ``x`` is sparse."""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.p = dropout

    def forward(self, x: Tensor) -> Tensor:
        return linear(dropout_features(x, self.p, self.training), self.weight, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", dropout={self.p}"
