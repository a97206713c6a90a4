r"""ANIE: attentional neural integral equations on fields (paper, B.4 and Table 4; Zappala et al. 2022).

The prediction solves the integral equation

.. math::
    y = f + T(y), \qquad (T y)(s) \approx \int_{\Omega \times [0, 1]} K(s, \sigma)\, v(y(\sigma))\, d\sigma,

on space-time tokens (tubelets of ``tubelet`` frames x ``patch`` x ``patch``), where
:math:`f` lifts the input frames and :math:`T = \mathrm{LN} \circ B_L \circ \dots \circ B_1` is made
of ``blocks`` transformer blocks with ``heads`` heads. Self-attention is the integral operator: with
:math:`K(s, \sigma) = \mathrm{softmax}_\sigma(q(s) \cdot k(\sigma) / \sqrt{d})` the sum over tokens is a
quadrature of the integral over the domain. The solver iterates
:math:`y_{k+1} = \alpha y_k + (1 - \alpha)(f + T(y_k))` from :math:`y_0 = f` for ``n_iter`` steps
(``n_iter = 1``: the operator applied once), and ``decode`` maps each token back to its tubelet of
output frames.

**Softmax, not Galerkin (softmax-free) attention**: it is what ANIE uses, its kernel is
normalised (:math:`\int K(s, \sigma) d\sigma = 1`, so :math:`T` averages values and stays bounded as
the iteration proceeds), and at our token counts (a few hundred) its quadratic cost is small;
PyTorch's ``scaled_dot_product_attention`` computes it. Positions enter as a function of the token
centre :math:`(t, x, y)` (Fourier features and a linear map), so the operator acts on functions of
the domain rather than on a table of slots.

Sizes: ``small``: width 64, patch 4, tubelet 2, MLP ratio 2; ``paper``: width 128, MLP ratio 4.
``heads`` and ``blocks`` give Table 4's 1H1B, 4H1B, 2H2B, 4H4B.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from ..errors import FixptError
from ..registry import register
from ..views import FIXED_POINT_VIEW
from .examples import tiny_navier_stokes_run
from ..solve import GRAD_MODES, METHODS
from .base import IterativeModel
from .vit import NO_ATTENTION_BOUND, FieldTokens, transformer

SIZES = {"small": dict(dim=64, patch=4, mlp_ratio=2.0), "paper": dict(dim=128, patch=4, mlp_ratio=4.0)}


@dataclass
class ANIEConfig:
    heads: int = field(default=1, metadata={"min": 1, "help": "attention heads (Table 4: H)"})
    blocks: int = field(default=1, metadata={"min": 1, "help": "transformer blocks in T (Table 4: B)"})
    size: str = field(default="small", metadata={"choices": tuple(SIZES), "help": "small (CPU) or paper"})
    n_iter: int = field(default=1, metadata={"min": 1, "help": "solver iterations of y = f + T(y)"})
    alpha: float = field(default=0.5, metadata={"min": 0, "below": 1, "help": "damping: weight kept on y_k"})
    tubelet: int = field(default=2, metadata={"min": 1, "help": "frames per space-time token"})
    solver: str = field(default="picard", metadata={"choices": METHODS, "help": "fixed-point solver"})
    grad: str = field(default="unroll", metadata={"choices": GRAD_MODES, "help": "gradient mode"})

    def validate(self) -> None:
        if self.n_iter < 1 or self.heads < 1 or self.blocks < 1:
            raise FixptError("n_iter, heads and blocks must be >= 1")
        if SIZES[self.size]["dim"] % self.heads:
            raise FixptError(f"heads={self.heads} must divide the width {SIZES[self.size]['dim']}")
        if not 0 <= self.alpha < 1:
            raise FixptError(f"alpha={self.alpha} must lie in [0, 1)")


@register("anie", config=ANIEConfig, task=("navier-stokes", "ns-initial"), view=FIXED_POINT_VIEW, example=tiny_navier_stokes_run)
class ANIE(IterativeModel):
    """Attentional neural integral equation: y = f + T(y), attention as the integral operator, solved by Picard iteration."""

    def __init__(self, cfg: ANIEConfig, in_dim, out_dim: int):
        super().__init__()
        in_ch, grid, self.cfg = in_dim.channels, in_dim.grid, cfg
        s = SIZES[cfg.size]
        self.tokens = FieldTokens(in_ch, out_dim, grid, s["patch"], s["dim"], tubelet=cfg.tubelet, coords=True)
        self.integral = transformer(s["dim"], cfg.blocks, cfg.heads, s["mlp_ratio"])

    def encode(self, data) -> Tensor:
        return self.tokens.encode(data.x)

    def step(self, y: Tensor, f: Tensor, data) -> Tensor:
        return f + self.integral(y)

    def decode(self, y: Tensor, data) -> Tensor:
        return self.tokens.decode(y)

    def solver_options(self) -> dict:
        c = self.cfg
        return dict(method=c.solver, alpha=c.alpha, tol=0.0, max_iter=c.n_iter, grad=c.grad, batched=True)

    def certified_lipschitz(self, data) -> tuple[float | None, str]:
        return None, NO_ATTENTION_BOUND
