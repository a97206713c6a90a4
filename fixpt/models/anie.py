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

**Softmax attention by default** (``attention = galerkin`` gives the softmax-free kind the authors' code
uses, below): its kernel is
normalised (:math:`\int K(s, \sigma) d\sigma = 1`, so :math:`T` averages values and stays bounded as
the iteration proceeds), and at our token counts (a few hundred) its quadratic cost is small;
PyTorch's ``scaled_dot_product_attention`` computes it. Positions enter as a function of the token
centre :math:`(t, x, y)` (Fourier features and a linear map), so the operator acts on functions of
the domain rather than on a table of slots.

Sizes: ``small``: width 64, patch 4, tubelet 2, MLP ratio 2; ``paper``: width 128, MLP ratio 4.
``heads`` and ``blocks`` give Table 4's 1H1B, 4H1B, 2H2B, 4H4B.

**The authors' form** (their public code, GitHub emazap7/ANIE), each switch a field, fixpt's form the default:

- ``residual``: :math:`P(y) = c + y + T(y)` (identity plus the integral, no contraction constraint), so a
  damped step is :math:`y \leftarrow y + (1 - \alpha)(c + T(y))`, a weight-tied residual network;
- ``free_term``: :math:`c` = the encoded input (``encoded``) or ``zero`` (theirs in training); the
  iteration starts from the encoded input either way;
- ``attention``: ``softmax`` (timm's pre-norm blocks) or ``galerkin`` (softmax-free, post-LayerNorm,
  :mod:`fixpt.models.galerkin`), with ``attn_dropout`` (theirs: 0.5) and ``dropout_at_eval`` (theirs: on);
- ``evaluations``: :math:`T` evaluated ``n_iter`` (``k``) or ``n_iter + 1`` (``k+1``, theirs: their
  ``max_iterations = k`` evaluates it k + 1 times) times;
- ``output``: decode the last damped ``iterate`` or the last undamped ``image`` :math:`P(y)` (theirs).

With ``output = image`` the last evaluation is the image, so the solver runs ``n_iter - 1`` (``k``) or
``n_iter`` (``k+1``) damped steps.
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
from .galerkin import galerkin_transformer
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
    residual: bool = field(default=False, metadata={"help": "P(y) = c + y + T(y), the authors' form (else c + T(y))"})
    free_term: str = field(default="encoded", metadata={"choices": ("encoded", "zero"), "help": "c: the encoded input, or zero (the authors')"})
    attention: str = field(default="softmax", metadata={"choices": ("softmax", "galerkin"), "help": "softmax (pre-norm) or galerkin (softmax-free, post-LayerNorm; the authors')"})
    attn_dropout: float = field(default=0.0, metadata={"min": 0, "below": 1, "help": "galerkin: dropout on K^T V (the authors': 0.5)"})
    dropout_at_eval: bool = field(default=False, metadata={"help": "galerkin: attention dropout on in evaluation too (the authors')"})
    evaluations: str = field(default="k", metadata={"choices": ("k", "k+1"), "help": "T evaluated n_iter (k) or n_iter + 1 (k+1, the authors') times"})
    output: str = field(default="iterate", metadata={"choices": ("iterate", "image"), "help": "decode the damped iterate, or the last undamped image P(y) (the authors')"})

    def damped_steps(self) -> int:
        """The solver's iterations: the evaluations of T, less the final image's."""
        return self.n_iter + (self.evaluations == "k+1") - (self.output == "image")

    def validate(self) -> None:
        if self.n_iter < 1 or self.heads < 1 or self.blocks < 1:
            raise FixptError("n_iter, heads and blocks must be >= 1")
        if self.damped_steps() < 1:
            raise FixptError("n_iter=1 with --output image and --evaluations k leaves no damped step; use --evaluations k+1 or n_iter >= 2")
        if self.attention != "galerkin" and (self.attn_dropout or self.dropout_at_eval):
            raise FixptError("--attn-dropout and --dropout-at-eval apply to --attention galerkin")
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
        if cfg.attention == "galerkin":
            self.integral = galerkin_transformer(s["dim"], cfg.blocks, cfg.heads, s["mlp_ratio"], cfg.attn_dropout, cfg.dropout_at_eval)
        else:
            self.integral = transformer(s["dim"], cfg.blocks, cfg.heads, s["mlp_ratio"])

    def encode(self, data) -> Tensor:
        return self.tokens.encode(data.x)

    def step(self, y: Tensor, f: Tensor, data) -> Tensor:
        """:math:`P(y) = c + [y +] T(y)`, :math:`c` = f (encoded) or 0."""
        out = self.integral(y)
        if self.cfg.residual:
            out = out + y
        return out + f if self.cfg.free_term == "encoded" else out

    def decode(self, y: Tensor, data) -> Tensor:
        if self.cfg.output == "image":  # the last, undamped evaluation
            y = self.step(y, self.encode(data), data)
        return self.tokens.decode(y)

    def solver_options(self) -> dict:
        c = self.cfg
        return dict(method=c.solver, alpha=c.alpha, tol=0.0, max_iter=c.damped_steps(), grad=c.grad, batched=True)

    def certified_lipschitz(self, data, norm: str = "l2") -> tuple[float | None, str]:
        return None, NO_ATTENTION_BOUND
