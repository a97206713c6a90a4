r"""PIGN: the Picard Iteration Graph Neural Network (paper, section 5.1, Algorithm 1).

.. math::
    f = \mathrm{MLP}_{enc}(X), \qquad
    z_{k+1} = \alpha z_k + (1 - \alpha)\big(\underbrace{\mathrm{ReLU}(\mathrm{GNN}(z_k))}_{T(z_k)} + f\big),
    \qquad z_0 = f, \qquad \hat y = \mathrm{Linear}(z^*)

One GNN block (GCN, GAT or GraphSAGE from torch-geometric) is iterated with shared weights until
:math:`\|z_{k+1} - z_k\| \le` ``tol`` or ``max_iter``; the encoded features are the free term.
With ``contractive`` the block's weights are spectrally normalised so that
:math:`\mathrm{Lip}(T) \le \gamma < 1` (see :mod:`fixpt.models.blocks`), which Banach's theorem
turns into a unique fixed point and a certificate from ``fixpt check-contraction``.
Dropout acts on the encoder input and the decoder input, so :math:`P` is deterministic; the one
exception is ``attn_dropout`` (GAT's attention dropout), which makes :math:`P` random *in training*
and so belongs with ``grad="unroll"`` (each iteration then sees its own mask, as stacked GAT layers
would). Evaluation is always deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..errors import FixptError
from ..registry import register
from ..solve import GRAD_MODES, METHODS
from .base import IterativeModel
from .blocks import BACKBONES, block_lipschitz_bound, make_block
from .dropout import Dropout, InputLinear


@dataclass
class PIGNConfig:
    backbone: str = field(default="gcn", metadata={"choices": BACKBONES, "help": "GNN block iterated"})
    hidden: int = field(default=64, metadata={"help": "width of z"})
    heads: int = field(default=8, metadata={"help": "attention heads (gat)"})
    alpha: float = field(default=0.5, metadata={"help": "damping: weight kept on z_k"})
    max_iter: int = field(default=10, metadata={"help": "at most this many Picard iterations"})
    tol: float = field(default=1e-4, metadata={"help": "stop when ||z_{k+1}-z_k|| / ||z_{k+1}|| <= tol"})
    solver: str = field(default="picard", metadata={"choices": METHODS, "help": "fixed-point solver"})
    grad: str = field(default="unroll", metadata={"choices": GRAD_MODES, "help": "gradient mode"})
    dropout: float = field(default=0.5, metadata={"help": "dropout on encoder and decoder inputs"})
    attn_dropout: float = field(default=0.6, metadata={"help": "gat only: dropout on attention coefficients inside the block (training only)"})
    contractive: bool = field(default=False, metadata={"help": "spectral-normalise the block to Lip <= gamma"})
    gamma: float = field(default=0.9, metadata={"help": "contraction factor with --contractive"})

    def validate(self) -> None:
        if self.contractive and not 0 < self.gamma < 1:
            raise FixptError(f"gamma={self.gamma} must lie in (0, 1) for a contraction")
        if self.backbone == "gat" and self.attn_dropout > 0 and self.grad != "unroll":
            raise FixptError(f"grad={self.grad!r} needs a deterministic operator: add --attn-dropout 0 (attention dropout "
                             "draws a new operator every step, which has no fixed point)")
        if self.max_iter < 1 or self.hidden < 1:
            raise FixptError("max_iter and hidden must be >= 1")


@register("pign", config=PIGNConfig, task="node-classification")
class PIGN(IterativeModel):
    """Picard-iteration GNN: one GNN block iterated to its fixed point (paper, Alg. 1)."""

    def __init__(self, cfg: PIGNConfig, in_dim: int, out_dim: int):
        super().__init__()
        self.cfg = cfg
        self.encoder = nn.Sequential(InputLinear(in_dim, cfg.hidden, dropout=cfg.dropout), nn.ReLU())
        self.block = make_block(cfg.backbone, cfg.hidden, heads=cfg.heads, contractive=cfg.contractive, gamma=cfg.gamma,
                                attn_dropout=cfg.attn_dropout)
        self.decoder = nn.Sequential(Dropout(cfg.dropout), nn.Linear(cfg.hidden, out_dim))

    def encode(self, data) -> Tensor:
        return self.encoder(data.x)  # (N, hidden): the free term f and z_0

    def step(self, z: Tensor, f: Tensor, data) -> Tensor:
        return torch.relu(self.block(z, data.edge_index)) + f  # P(z) = T(z) + f

    def decode(self, z: Tensor, data) -> Tensor:
        return self.decoder(z)  # (N, classes) logits

    def solver_options(self) -> dict:
        c = self.cfg
        return dict(method=c.solver, alpha=c.alpha, tol=c.tol, max_iter=c.max_iter, grad=c.grad, batched=False)

    def certified_lipschitz(self, data) -> tuple[float | None, str]:
        return block_lipschitz_bound(self.block, data.edge_index, data.num_nodes)
