r"""IterGNN (Tang et al., 2020, "Towards scale-invariant graph-related problem solving by
iterative homogeneous GNNs"): a GNN block iterated with a *learned*, confidence-based stop.

.. math::
    h_0 = \mathrm{MLP}_{enc}(X), \quad h_k = \mathrm{ReLU}(\mathrm{GNN}(h_{k-1})), \quad
    c_k = \mathrm{sigmoid}(w^\top \mathrm{mean}_v h_{k,v} + b),

    \hat h = \sum_{k=1}^{K} p_k h_k, \qquad p_k = c_k \prod_{j<k} (1 - c_j)
    \quad (\text{the remaining mass } \textstyle\prod_{j \le K}(1 - c_j) \text{ goes to } h_K)

The confidence is graph-level (mean pooling: the whole graph is one sample). Training runs all
``max_iter`` iterations so the expectation is differentiable; at evaluation the loop stops once
the probability of continuing, :math:`\prod_j (1 - c_j)`, falls below ``stop_eps`` (under
``vmap``, in seed-batched training, the loop runs on and the later iterates get weight 0).
In the fixed-point view (``iterate``, ``check-contraction``) its operator is :math:`P = T`
(no free term, no damping). The homogeneity trick of the original (bias-free layers) is not used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..errors import DivergenceError
from ..registry import register
from ..views import FIXED_POINT_VIEW
from .backbone import BACKBONE_HELP, BLOCK_KWARGS_HELP, GraphBackbone
from .base import IterativeModel
from .blocks import block_lipschitz_bound, make_block
from . import kernels
from .dropout import Dropout, InputLinear


@dataclass
class IterGNNConfig(GraphBackbone):
    backbone: str = field(default="gcn", metadata={"help": BACKBONE_HELP})
    block_kwargs: str = field(default="", metadata={"help": BLOCK_KWARGS_HELP})
    hidden: int = field(default=64, metadata={"min": 1, "help": "width of h"})
    heads: int = field(default=8, metadata={"min": 1, "help": "attention heads (gat)"})
    max_iter: int = field(default=10, metadata={"min": 1, "help": "most iterations"})
    stop_eps: float = field(default=0.01, metadata={"min": 0, "help": "stop when P(continue) < stop_eps (evaluation)"})
    tol: float = field(default=1e-4, metadata={"min": 0, "help": "residual tolerance for the fixed-point view"})
    dropout: float = field(default=0.5, metadata={"min": 0, "below": 1, "help": "dropout on encoder and decoder inputs"})

    def validate(self) -> None:
        self.validate_backbone()


@register("itergnn", config=IterGNNConfig, task="node-classification", view=FIXED_POINT_VIEW, example={"hidden": 8, "csbm_nodes": 120, "epochs": 2})
class IterGNN(IterativeModel):
    """IterGNN: a GNN block iterated with learned confidence-based stopping (Tang et al., 2020)."""

    def __init__(self, cfg: IterGNNConfig, in_dim: int, out_dim: int):
        super().__init__()
        self.cfg = cfg
        backend = kernels.backend()
        self.encoder = nn.Sequential(InputLinear(in_dim, cfg.hidden, dropout=cfg.dropout, backend=backend), nn.ReLU())
        self.block = make_block(cfg.backbone, cfg.hidden, heads=cfg.heads, backend=backend, block_kwargs=cfg.block_arguments())
        self.confidence = nn.Linear(cfg.hidden, 1)
        self.decoder = nn.Sequential(Dropout(cfg.dropout, backend), nn.Linear(cfg.hidden, out_dim))
        self.graphs = kernels.GraphCache(self.block.graph_needs, backend)
        self.n_iter = 0

    def encode(self, data) -> Tensor:
        return self.encoder(self.graphs(data).x)  # the graph built here, before any step

    def step(self, z: Tensor, f: Tensor, data) -> Tensor:
        return torch.relu(self.block(z, self.graphs(data)))  # P = T: IterGNN has no free term

    def decode(self, z: Tensor, data) -> Tensor:
        return self.decoder(z)

    def solver_options(self) -> dict:
        return dict(method="picard", alpha=0.0, tol=self.cfg.tol, max_iter=self.cfg.max_iter, grad="unroll", batched=False,
                    frozen=self.seed_batched)

    def run_statistics(self) -> dict:
        return {"n_iter": self.n_iter}  # it stops by its own rule, not by a solve

    def certified_lipschitz(self, data, norm: str = "l2") -> tuple[float | None, str]:
        return block_lipschitz_bound(self.block, data.edge_index, data.num_nodes, norm)

    def forward(self, data) -> Tensor:
        h = self.encode(data)
        out = torch.zeros_like(h)
        remaining = h.new_ones(())  # prod_j (1 - c_j); 0 once stopped, so later iterates add nothing
        K = self.cfg.max_iter
        for k in range(1, K + 1):
            h = self.step(h, None, data)
            c = torch.sigmoid(self.confidence(h.mean(dim=0))).squeeze()
            if self.training or k == K:
                stop = torch.tensor(k == K, device=h.device)
            else:
                stop = remaining * (1 - c) < self.cfg.stop_eps
            out = out + torch.where(stop, remaining, remaining * c) * h  # the stopping iterate takes the remaining mass
            remaining = torch.where(stop, 0.0, remaining * (1 - c))
            if k == K or (not self.seed_batched and not self.training and bool(stop)):  # under vmap: run on, adding nothing
                break
        self.n_iter = k
        if not self.seed_batched and not torch.isfinite(out).all():
            raise DivergenceError(f"IterGNN produced non-finite values at iteration {k}; lower the learning rate")
        return self.decode(out, data)
