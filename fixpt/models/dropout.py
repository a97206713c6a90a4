r"""Dropout for sparse inputs such as bag-of-words features.

Dropout multiplies every entry by an independent mask :math:`m_{ij} / (1 - p)`,
:math:`m_{ij} \sim \mathrm{Bernoulli}(1 - p)`. A zero entry stays zero whatever it draws, so drawing
masks for the non-zero entries alone gives the *same distribution* of outputs. On Cora
(2708 x 1433 features, 1.3 % non-zero) that is one draw per word instead of one per
(node, vocabulary) pair, and the draw was a third of a training step
(``benchmarks/feature_dropout.py`` measures it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
