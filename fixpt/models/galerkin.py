r"""Galerkin (softmax-free) attention with post-LayerNorm blocks: the attention of ANIE's authors' code
(Cao 2021, "Choose a Transformer: Fourier or Galerkin").

Per head, with :math:`Q = x W_q`, :math:`\tilde K = \mathrm{LN}(x W_k)`, :math:`\tilde V = \mathrm{LN}(x W_v)`
over :math:`n` tokens,

.. math:: \mathrm{Attn}(x) = \frac{1}{n}\, Q\, \mathrm{drop}_p(\tilde K^\top \tilde V),

a Petrov-Galerkin projection: the :math:`d \times d` matrix :math:`\tilde K^\top \tilde V / n` is a quadrature
of :math:`\int k(\sigma) v(\sigma)^\top d\sigma`, linear in :math:`n`. ``dropout`` (p) acts on that matrix;
with ``dropout_at_eval`` it stays on in evaluation mode too, as ``F.dropout``'s default (training=True) keeps it
in the authors' code, so every evaluation is a random draw. A block is post-norm:
:math:`x \leftarrow \mathrm{LN}(x + \mathrm{Attn}(x))`, :math:`x \leftarrow \mathrm{LN}(x + \mathrm{MLP}(x))`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class GalerkinAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0, dropout_at_eval: bool = False):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.norm_k = nn.LayerNorm(self.head_dim)
        self.norm_v = nn.LayerNorm(self.head_dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout, self.dropout_at_eval = dropout, dropout_at_eval

    def forward(self, x: Tensor) -> Tensor:
        b, n, dim = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # each (b, h, n, d)
        kv = self.norm_k(k).transpose(-2, -1) @ self.norm_v(v) / n  # (b, h, d, d)
        kv = F.dropout(kv, self.dropout, training=self.training or self.dropout_at_eval)
        return self.proj((q @ kv).transpose(1, 2).reshape(b, n, dim))


class PostNormBlock(nn.Module):
    """:math:`x \\leftarrow \\mathrm{LN}(x + A(x))`, then :math:`x \\leftarrow \\mathrm{LN}(x + M(x))`."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float = 0.0, dropout_at_eval: bool = False):
        super().__init__()
        self.attn = GalerkinAttention(dim, heads, dropout, dropout_at_eval)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.mlp(x))


def galerkin_transformer(dim: int, depth: int, heads: int, mlp_ratio: float, dropout: float = 0.0,
                         dropout_at_eval: bool = False) -> nn.Module:
    """``depth`` post-norm Galerkin blocks (each ends in a LayerNorm, so the stack is bounded)."""
    return nn.Sequential(*[PostNormBlock(dim, heads, mlp_ratio, dropout, dropout_at_eval) for _ in range(depth)])
