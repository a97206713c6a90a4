r"""Plain GNNs: ``layers`` GCN / GAT / GraphSAGE convolutions stacked without iteration, the
paper's "w/o iterations" rows (Table 5; Kipf & Welling 2017, Velickovic et al. 2018,
Hamilton et al. 2017).

.. math::
    h^{(0)} = X, \qquad h^{(l+1)} = \sigma\big(\mathrm{conv}_l(\mathrm{dropout}(h^{(l)}))\big),
    \qquad \hat y = h^{(L)} \text{ (no activation on the last layer)}

GAT uses ``heads`` concatenated heads of width ``hidden / heads`` in hidden layers, one head at
the output, ELU and attention dropout, as in PyG's reference example.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import FixptError
from ..registry import register
from .widths import GraphWidth
from .blocks import BACKBONES, GCNBlock, SAGEBlock
from .gat import GATBlock
from .dropout import dropout, dropout_features


@dataclass
class GNNConfig(GraphWidth):
    backbone: str = field(default="gcn", metadata={"choices": BACKBONES, "help": "convolution type"})
    layers: int = field(default=2, metadata={"help": "number of stacked convolutions"})
    hidden: int = field(default=64, metadata={"help": "hidden width"})
    heads: int = field(default=8, metadata={"help": "attention heads (gat)"})
    dropout: float = field(default=0.5, metadata={"help": "dropout before every layer"})

    def validate(self) -> None:
        if self.layers < 1:
            raise FixptError(f"layers={self.layers} must be >= 1")
        if self.backbone == "gat" and self.hidden % self.heads:
            raise FixptError(f"hidden={self.hidden} must be divisible by heads={self.heads} for gat")


@register("gnn", config=GNNConfig, task="node-classification")
class GNN(nn.Module):
    """Stacked GNN layers without iteration (the paper's "w/o iterations" baseline)."""

    def __init__(self, cfg: GNNConfig, in_dim: int, out_dim: int):
        super().__init__()
        self.cfg = cfg
        dims = [in_dim] + [cfg.hidden] * (cfg.layers - 1) + [out_dim]
        self.convs = nn.ModuleList(self._conv(a, b, first=(i == 0), last=(i == cfg.layers - 1)) for i, (a, b) in enumerate(zip(dims, dims[1:])))
        self.act = F.elu if cfg.backbone == "gat" else F.relu

    def _conv(self, a: int, b: int, first: bool, last: bool) -> nn.Module:
        c = self.cfg
        if c.backbone == "gcn":
            return GCNBlock(a, b, dropout=c.dropout, sparse_input=first)
        if c.backbone == "sage":
            return SAGEBlock(a, b, dropout=c.dropout, sparse_input=first)
        return GATBlock(a, b, heads=1, dropout=c.dropout) if last else GATBlock(a, b // c.heads, heads=c.heads, dropout=c.dropout)

    def run_statistics(self) -> dict:
        return {}  # no iteration to report

    def forward(self, data) -> Tensor:
        h = data.x
        for i, conv in enumerate(self.convs):
            if isinstance(conv, GATBlock):  # GCN and SAGE blocks drop their own inputs (sparse-aware)
                # input features: masks on the non-zeros only, and a CSR product when they are sparse (bag-of-words)
                drop = dropout_features if i == 0 else dropout
                h = drop(h, self.cfg.dropout, self.training)
            h = conv(h, data.edge_index)
            if i < len(self.convs) - 1:
                h = self.act(h)
        return h
