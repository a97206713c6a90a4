r"""Iterative vision transformers on fields (paper, section 5.2, Table 2, Algorithm 2).

.. math::
    f = \mathrm{PatchEmbed}(x) + p, \qquad
    z_{k+1} = \alpha z_k + (1 - \alpha)\big(T(z_k) + f\big), \qquad z_0 = f, \qquad
    \hat y = \mathrm{Unpatch}(\mathrm{Linear}(z_{n}))

with :math:`T = \mathrm{LayerNorm} \circ B_L \circ \dots \circ B_1` a transformer encoder built
from timm's blocks (pre-norm attention and MLP, each with its residual; attention through
``scaled_dot_product_attention``), applied ``n_iter`` times with shared weights. ``n_iter = 1``
is the ordinary single-pass ViT. The final LayerNorm keeps :math:`T` bounded, so iterates cannot
grow with the number of iterations.

Variants (the paper names them without defining them; these are our definitions):

- ``vit``: square patches of all input frames (frames as channels), learned position embedding;
- ``vit-small``: ``vit`` at half the width and half the depth;
- ``vit-parallel``: ``vit`` with timm's ``ParallelScalingBlock``, attention and MLP computed in
  parallel from the same normalised input (:math:`u + A(\mathrm{LN} u) + M(\mathrm{LN} u)`);
- ``vit-3d``: space-time ("tubelet") patches of ``tubelet`` frames x ``patch`` x ``patch``,
  the input frames as one channel, each token decoding to its own tubelet of output frames (needs
  ``in_frames == out_frames``; with other counts, e.g. ns-initial's one frame in and ten out, each
  spatial patch of the input fills every output time slot, :class:`FieldTokens`).

``head = "pooled"`` (:class:`PooledHead`) replaces the per-token un-patching by vit-pytorch's head: the
tokens' mean, one linear map to the whole output field (a hypothesis for the paper's ViTs, issue 16).

On the masked-pixel task (Table 3), or with ``iterate_on = "pixels"`` on any field task, the iteration
runs on the image instead, with no free term (the Table 3 caption's form):
:math:`x_{i+1} = (1 - \lambda) T(x_i) + \lambda x_i`, :math:`\lambda` = ``alpha``, with :math:`T` = embed,
encoder, ``decoder_depth`` more blocks, un-patch (an image to an image), and the output (and the loss) is
the last iterate :math:`x_{n}`. When input and output have the same channels (masked pixels,
navier-stokes with ``in_frames == out_frames``) :math:`x_0` is the input and :math:`T(x)` sees only
:math:`x`. Otherwise (ns-initial: the t = 0 field in, a trajectory of ``frames`` out) the iterate is the
trajectory, :math:`x_0` = the last input frame repeated in every output slot (the persistence guess),
and :math:`T([x_i, u])` maps a trajectory to a trajectory with the input :math:`u` as extra channels
(the input is a condition, not an added free term).

Sizes: ``small`` (CPU minutes): patch 4, width 64, depth 4, 4 heads, MLP ratio 2, no decoder
blocks; ``paper``: the one ViT the paper specifies (Table 3): patch 2, width 192, 12 encoder and 4
decoder blocks, 3 heads, MLP ratio 4. ``vit-small`` halves width, depths and heads of either
(paper: width 96, 6 + 2 blocks, 1 head). ``--patch`` and ``--decoder-depth`` override the size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..errors import FixptError
from ..registry import register
from ..views import FIXED_POINT_VIEW
from ..solve import GRAD_MODES, METHODS
from .base import IterativeModel

VARIANTS = ("vit", "vit-small", "vit-parallel", "vit-3d")
ITERATE_ON = ("task", "tokens", "pixels")
HEADS = ("tokens", "pooled")
SIZES = {"small": dict(patch=4, dim=64, depth=4, heads=4, mlp_ratio=2.0, decoder_depth=0),
         "paper": dict(patch=2, dim=192, depth=12, heads=3, mlp_ratio=4.0, decoder_depth=4)}


@dataclass
class ViTConfig:
    variant: str = field(default="vit", metadata={"choices": VARIANTS, "help": "architecture (see the model's docs)"})
    size: str = field(default="small", metadata={"choices": tuple(SIZES), "help": "small (CPU) or paper"})
    n_iter: int = field(default=1, metadata={"min": 1, "help": "Picard iterations of the encoder (1: the plain ViT)"})
    alpha: float = field(default=0.5, metadata={"min": 0, "below": 1, "help": "damping: weight kept on z_k"})
    tubelet: int = field(default=2, metadata={"min": 1, "help": "vit-3d: frames per space-time patch"})
    patch: int = field(default=0, metadata={"min": 0, "help": "patch size (0: the size's)"})
    decoder_depth: int = field(default=-1, metadata={"min": -1, "help": "transformer blocks between the iteration and the output head (-1: the size's)"})
    solver: str = field(default="picard", metadata={"choices": METHODS, "help": "fixed-point solver"})
    grad: str = field(default="unroll", metadata={"choices": GRAD_MODES, "help": "gradient mode"})
    iterate_on: str = field(default="task", metadata={"choices": ITERATE_ON, "help": "iterate on tokens (z <- damped T(z) + f) or on pixels "
                                                     "(x <- (1 - alpha) T(x) + alpha x, no free term); task: the task's choice"})
    head: str = field(default="tokens", metadata={"choices": HEADS, "help": "tokens: each token decodes its own patch; pooled: vit-pytorch's "
                                                  "classification head on fields (the tokens' mean, one linear map to every output pixel), "
                                                  "a hypothesis for the paper's Table 2 ViTs"})

    def validate(self) -> None:
        if self.n_iter < 1:
            raise FixptError(f"n_iter={self.n_iter} must be >= 1")
        if not 0 <= self.alpha < 1:
            raise FixptError(f"alpha={self.alpha} must lie in [0, 1)")

    def shape(self) -> dict:
        s = dict(SIZES[self.size])
        s["patch"] = self.patch or s["patch"]
        if self.decoder_depth >= 0:
            s["decoder_depth"] = self.decoder_depth
        if self.variant == "vit-small":
            s.update(dim=s["dim"] // 2, depth=max(1, s["depth"] // 2), heads=max(1, s["heads"] // 2),
                     decoder_depth=s["decoder_depth"] // 2)
        return s


def transformer(dim: int, depth: int, heads: int, mlp_ratio: float, parallel: bool = False) -> nn.Module:
    """:math:`T = \\mathrm{LN} \\circ B_L \\circ \\dots \\circ B_1` from timm's blocks."""
    from timm.models.vision_transformer import Block, ParallelScalingBlock

    block = ParallelScalingBlock if parallel else Block
    return nn.Sequential(*[block(dim, heads, mlp_ratio=mlp_ratio, qkv_bias=True) for _ in range(depth)], nn.LayerNorm(dim))


COORD_FREQUENCIES = 4
NO_ATTENTION_BOUND = ("no certified bound: dot-product attention is not globally Lipschitz (Kim et al. 2021), so only the "
                      "local Jacobian norm and the empirical ratio, estimates, are reported")


def token_centres(frames: int, g: int) -> Tensor:
    """``(frames * g * g, 3)`` centres (t, x, y) of the tokens in [0, 1)^3, in the tokens' order."""
    t, x, y = torch.meshgrid(*((torch.arange(k) + 0.5) / k for k in (frames, g, g)), indexing="ij")
    return torch.stack((t, x, y), -1).reshape(-1, 3)


class FieldTokens(nn.Module):
    """Fields ``(B, C, s, s)`` <-> tokens ``(B, n, dim)``: square patches over all channels, or
    space-time tubelets (``tubelet > 0``: the channels are frames of one field). With tubelets and
    ``in_ch != out_ch`` (e.g. ns-initial: the t = 0 field in, ten frames out) each spatial patch of all
    input channels is embedded once and its token repeated in every output time slot (the slots differ
    by their position), as ANIE's authors start every time from the encoded initial field."""

    def __init__(self, in_ch: int, out_ch: int, grid: int, patch: int, dim: int, tubelet: int = 0, coords: bool = False,
                 token_head: bool = True):
        super().__init__()
        if grid % patch:
            raise FixptError(f"patch={patch} must divide the grid size {grid}")
        if tubelet and out_ch % tubelet:
            raise FixptError(f"space-time tokens need the {out_ch} output frames divisible by tubelet={tubelet}; change --tubelet")
        self.grid, self.patch, self.tubelet, self.out_ch = grid, patch, tubelet, out_ch
        self.repeat = out_ch // tubelet if tubelet and in_ch != out_ch else 0  # time slots filled from one spatial token
        if self.repeat:
            self.embed = nn.Conv2d(in_ch, dim, kernel_size=patch, stride=patch)
            n = self.repeat * (grid // patch) ** 2
            self.head = nn.Linear(dim, tubelet * patch * patch)
        elif tubelet:
            self.embed = nn.Conv3d(1, dim, kernel_size=(tubelet, patch, patch), stride=(tubelet, patch, patch))
            n = (in_ch // tubelet) * (grid // patch) ** 2
            self.head = nn.Linear(dim, tubelet * patch * patch)
        else:
            self.embed = nn.Conv2d(in_ch, dim, kernel_size=patch, stride=patch)
            n = (grid // patch) ** 2
            self.head = nn.Linear(dim, out_ch * patch * patch)
        if not token_head:  # the model decodes with its own head (PooledHead): no unused weights
            self.head = None
        if coords:  # a function of the token's centre (t, x, y) in [0, 1)^3, not a table: see anie.py
            t = out_ch // tubelet if tubelet else 1
            self.register_buffer("centres", token_centres(t, grid // patch), persistent=False)
            self.coord_embed = nn.Linear(self.centres.shape[-1] * 2 * COORD_FREQUENCIES, dim)
        else:
            self.pos = nn.Parameter(torch.zeros(1, n, dim))
            nn.init.trunc_normal_(self.pos, std=0.02)

    def position(self) -> Tensor:
        if hasattr(self, "pos"):
            return self.pos
        freq = torch.arange(1, COORD_FREQUENCIES + 1, device=self.centres.device, dtype=self.centres.dtype)
        phase = 2 * torch.pi * self.centres[..., None] * freq  # (n, 3, F)
        return self.coord_embed(torch.cat((phase.sin(), phase.cos()), -1).flatten(1))[None]

    def encode(self, x: Tensor) -> Tensor:
        e = self.embed(x[:, None] if self.tubelet and not self.repeat else x)  # (B, dim, [t,] h, w)
        e = e.flatten(2).transpose(1, 2)  # (B, n, dim), tokens in (t, h, w) order
        if self.repeat:
            e = e.repeat(1, self.repeat, 1)
        return e + self.position()

    def decode(self, z: Tensor) -> Tensor:
        b, g, p = z.shape[0], self.grid // self.patch, self.patch
        out = self.head(z)  # (B, n, [tubelet *] C * p * p)
        if self.tubelet:
            t = self.out_ch // self.tubelet
            out = out.view(b, t, g, g, self.tubelet, p, p).permute(0, 1, 4, 2, 5, 3, 6)
            return out.reshape(b, self.out_ch, g * p, g * p)
        out = out.view(b, g, g, self.out_ch, p, p).permute(0, 3, 1, 4, 2, 5)
        return out.reshape(b, self.out_ch, g * p, g * p)


class PooledHead(nn.Module):
    r"""vit-pytorch's classification head applied to fields: :math:`\hat y = W\, \bar z + b`, reshaped to
    ``(out_ch, grid, grid)``, with :math:`\bar z = \frac1n \sum_i z_i` the mean of the tokens (its ``pool =
    "mean"``; the encoder already ends with a LayerNorm). The whole output field is an affine function of one
    ``dim``-vector, so it cannot place detail where a token sits. This is a hypothesis, not a fact (issue 16): the
    paper names its Table 2 models as lucidrains/vit-pytorch names its files, and those ViTs end in a pooled
    head. Whether such a head explains the paper's single-pass scores near the per-pixel-mean level is what
    preset ``table2-pooled-cpu`` measures."""

    def __init__(self, dim: int, out_ch: int, grid: int):
        super().__init__()
        self.out_ch, self.grid = out_ch, grid
        self.proj = nn.Linear(dim, out_ch * grid * grid)

    def forward(self, z: Tensor) -> Tensor:
        return self.proj(z.mean(1)).view(z.shape[0], self.out_ch, self.grid, self.grid)


@register("vit", config=ViTConfig, task=("navier-stokes", "masked-pixels", "ns-initial"), view=FIXED_POINT_VIEW,
          example={"task": "masked-pixels", "patch": 2, "variant": "vit-small", "n_iter": 2, "epochs": 1, "batch_size": 60})
class IterativeViT(IterativeModel):
    """Iterative vision transformer: one encoder applied n_iter times as a damped Picard iteration (paper, Alg. 2)."""

    def __init__(self, cfg: ViTConfig, in_dim, out_dim: int):
        super().__init__()
        in_ch, grid, self.cfg = in_dim.channels, in_dim.grid, cfg
        # where the iteration runs: on tokens (Navier-Stokes) or on the image (masked pixels), or as --iterate-on says
        self.pixels = (in_dim.iterate_in if cfg.iterate_on == "task" else cfg.iterate_on) == "pixels"
        if self.pixels and cfg.variant == "vit-3d":
            raise FixptError("iterating on pixels needs a 2-D variant mapping images to images, not vit-3d; "
                             "change --variant or use --iterate-on tokens")
        # pixels with in != out channels: the iterate is the output trajectory, the input joins T's channels
        self.condition = self.pixels and in_ch != out_dim
        s = cfg.shape()
        tokens_in = out_dim + in_ch if self.condition else in_ch
        pooled = cfg.head == "pooled"
        self.tokens = FieldTokens(tokens_in, out_dim, grid, s["patch"], s["dim"], cfg.tubelet if cfg.variant == "vit-3d" else 0,
                                  token_head=not pooled)
        self.pooled_head = PooledHead(s["dim"], out_dim, grid) if pooled else None
        self.encoder = transformer(s["dim"], s["depth"], s["heads"], s["mlp_ratio"], parallel=cfg.variant == "vit-parallel")
        self.decoder = transformer(s["dim"], s["decoder_depth"], s["heads"], s["mlp_ratio"]) if s["decoder_depth"] else nn.Identity()
        self.out_ch = out_dim

    def to_field(self, z: Tensor) -> Tensor:
        """Tokens to the output field, by the token head (each token its patch) or the pooled head."""
        return self.tokens.decode(z) if self.pooled_head is None else self.pooled_head(z)

    def image_map(self, x: Tensor, data=None) -> Tensor:
        """Pixels mode: :math:`T(x)` (or :math:`T([x, u])` with the input :math:`u` as extra channels), an image to an image."""
        if self.condition:
            x = torch.cat((x, data.x), 1)
        return self.to_field(self.decoder(self.encoder(self.tokens.encode(x))))

    def encode(self, data) -> Tensor:
        if not self.pixels:
            return self.tokens.encode(data.x)
        # x_0: the input, or (in != out channels) its last frame in every output slot
        return data.x[:, -1:].expand(-1, self.out_ch, -1, -1).contiguous() if self.condition else data.x

    def step(self, z: Tensor, f: Tensor, data) -> Tensor:
        # tokens: P(z) = T(z) + f; pixels: P(x) = T(x), so the damped step is x <- (1 - lam) T(x) + lam x
        return self.image_map(z, data) if self.pixels else self.encoder(z) + f

    def decode(self, z: Tensor, data) -> Tensor:
        return z if self.pixels else self.to_field(self.decoder(z))

    def solver_options(self) -> dict:
        c = self.cfg
        return dict(method=c.solver, alpha=c.alpha, tol=0.0, max_iter=c.n_iter, grad=c.grad, batched=True)

    def certified_lipschitz(self, data, norm: str = "l2") -> tuple[float | None, str]:
        return None, NO_ATTENTION_BOUND
