r"""Plain GNNs: ``layers`` GCN / GAT / GraphSAGE convolutions stacked without iteration, the
paper's "w/o iterations" rows (Table 5; Kipf & Welling 2017, Velickovic et al. 2018,
Hamilton et al. 2017), or layers of any torch-geometric convolution (``pyg:NAME``, the baseline of a
PIGN on the same backbone; :mod:`fixpt.models.backbone`).

.. math::
    h^{(0)} = X, \qquad h^{(l+1)} = \sigma\big(\mathrm{conv}_l(\mathrm{dropout}(h^{(l)}))\big),
    \qquad \hat y = h^{(L)} \text{ (no activation on the last layer)}

GAT uses ``heads`` concatenated heads of width ``hidden / heads`` in hidden layers, one head at
the output, ELU and attention dropout, as in PyG's reference example. A ``pyg:NAME`` layer is built
from the width before it to the width after it (``block_kwargs`` as PIGN's), with dropout on its
input and ReLU between layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import FixptError
from ..registry import register
from .backbone import BACKBONE_HELP, BLOCK_KWARGS_HELP, GraphBackbone
from . import kernels
from .blocks import GCNBlock, PyGBlock, SAGEBlock, is_pyg
from .dropout import Dropout
from .gat import GATBlock
from .kernels.pyg import PREFIX


@dataclass
class GNNConfig(GraphBackbone):
    backbone: str = field(default="gcn", metadata={"help": BACKBONE_HELP})
    block_kwargs: str = field(default="", metadata={"help": BLOCK_KWARGS_HELP})
    layers: int = field(default=2, metadata={"min": 1, "help": "number of stacked convolutions"})
    hidden: int = field(default=64, metadata={"min": 1, "help": "hidden width"})
    heads: int = field(default=8, metadata={"min": 1, "help": "attention heads (gat)"})
    dropout: float = field(default=0.5, metadata={"min": 0, "below": 1, "help": "dropout before every layer"})

    def validate(self) -> None:
        if self.layers < 1:
            raise FixptError(f"layers={self.layers} must be >= 1")
        self.validate_backbone()
        if self.backbone == "gat" and self.hidden % self.heads:
            raise FixptError(f"hidden={self.hidden} must be divisible by heads={self.heads} for gat")


@register("gnn", config=GNNConfig, task="node-classification", example={"hidden": 8, "csbm_nodes": 120, "epochs": 2})
class GNN(nn.Module):
    """Stacked GNN layers without iteration (the paper's "w/o iterations" baseline)."""

    def __init__(self, cfg: GNNConfig, in_dim: int, out_dim: int):
        super().__init__()
        self.cfg = cfg
        backend = kernels.backend()
        dims = [in_dim] + [cfg.hidden] * (cfg.layers - 1) + [out_dim]
        self.convs = nn.ModuleList(self._conv(a, b, i == cfg.layers - 1, backend) for a, b, i in zip(dims, dims[1:], range(cfg.layers)))
        self.act = F.elu if cfg.backbone == "gat" else F.relu
        self.drop = Dropout(cfg.dropout, backend)  # before GAT layers; GCN and SAGE blocks drop their own inputs
        self.graphs = kernels.GraphCache(self.convs[0].graph_needs, backend)

    def _conv(self, a: int, b: int, last: bool, backend: str) -> nn.Module:
        c = self.cfg
        if is_pyg(c.backbone):
            return PyGBlock(c.backbone.removeprefix(PREFIX), b, c.block_arguments(), in_dim=a)
        if c.backbone == "gcn":
            return GCNBlock(a, b, dropout=c.dropout, backend=backend)
        if c.backbone == "sage":
            return SAGEBlock(a, b, dropout=c.dropout, backend=backend)
        heads, width = (1, b) if last else (c.heads, b // c.heads)
        return GATBlock(a, width, heads=heads, dropout=c.dropout, backend=backend)

    def run_statistics(self) -> dict:
        return {}  # no iteration to report

    def forward(self, data) -> Tensor:
        graph = self.graphs(data)
        h = graph.x  # input features: a sparse matrix when they are sparse (bag-of-words), dropped on the non-zeros only
        for i, conv in enumerate(self.convs):
            if isinstance(conv, (GATBlock, PyGBlock)):
                h = self.drop(h)
            h = conv(h, graph)
            if i < len(self.convs) - 1:
                h = self.act(h)
        return h
