r"""Galerkin (softmax-free) attention with post-LayerNorm blocks, as ANIE's authors' code builds it
(``SimpleTransformerEncoderLayer`` of their ``IE_source/Galerkin_transformer.py`` with its defaults, after Cao
2021, "Choose a Transformer: Fourier or Galerkin").

Per head, with :math:`Q = x W_q`, :math:`K = x W_k`, :math:`V = x W_v` over :math:`n` tokens,

.. math:: \mathrm{Attn}(x) = \frac{1}{n}\, Q\, \mathrm{drop}_p(K^\top V),

a Petrov-Galerkin projection: the :math:`d \times d` matrix :math:`K^\top V / n` is a quadrature of
:math:`\int k(\sigma) v(\sigma)^\top d\sigma`, linear in :math:`n`. The heads are concatenated with no output
projection. Their layer's defaults, kept here: no LayerNorm on :math:`K` and :math:`V` (``attn_norm`` defaults
to ``not layer_norm``, and ``layer_norm`` is on), and :math:`W_q, W_k, W_v` initialised small, Xavier-uniform
with gain :math:`10^{-2}` plus :math:`10^{-2} I`, biases zero, so that attention starts near zero and a
residual iteration starts near the identity. ``dropout`` (p) acts on :math:`K^\top V`; with ``dropout_at_eval``
it stays on in evaluation mode too, as ``F.dropout``'s default (training=True) keeps it in their code, so every
evaluation is a random draw. A block is post-norm with a ReLU feed-forward:
:math:`x \leftarrow \mathrm{LN}(x + \mathrm{Attn}(x))`, :math:`x \leftarrow \mathrm{LN}(x + W_2\,\mathrm{relu}(W_1 x))`.
Not reproduced: their blocks' ordinary dropout (``nn.Dropout``, training only) on the attention and
feed-forward outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


XAVIER_GAIN, DIAGONAL = 1e-2, 1e-2  # the authors' initialisation of W_q, W_k, W_v


class GalerkinAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0, dropout_at_eval: bool = False):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.dropout, self.dropout_at_eval = dropout, dropout_at_eval
        with torch.no_grad():
            for w in self.qkv.weight.split(dim):  # each of W_q, W_k, W_v: Xavier (gain 1e-2) + 1e-2 I
                nn.init.xavier_uniform_(w, gain=XAVIER_GAIN)
                w += DIAGONAL * torch.eye(dim)
            self.qkv.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        b, n, dim = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # each (b, h, n, d)
        kv = k.transpose(-2, -1) @ v / n  # (b, h, d, d)
        kv = F.dropout(kv, self.dropout, training=self.training or self.dropout_at_eval)
        return (q @ kv).transpose(1, 2).reshape(b, n, dim)


class PostNormBlock(nn.Module):
    """:math:`x \\leftarrow \\mathrm{LN}(x + A(x))`, then :math:`x \\leftarrow \\mathrm{LN}(x + M(x))`."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float = 0.0, dropout_at_eval: bool = False):
        super().__init__()
        self.attn = GalerkinAttention(dim, heads, dropout, dropout_at_eval)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.mlp(x))


def galerkin_transformer(dim: int, depth: int, heads: int, mlp_ratio: float, dropout: float = 0.0,
                         dropout_at_eval: bool = False) -> nn.Module:
    """``depth`` post-norm Galerkin blocks (each ends in a LayerNorm, so the stack is bounded)."""
    return nn.Sequential(*[PostNormBlock(dim, heads, mlp_ratio, dropout, dropout_at_eval) for _ in range(depth)])
