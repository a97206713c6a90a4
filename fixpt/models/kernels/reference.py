"""The reference backend: torch-geometric's convolutions, run with a block's own parameters.

A reference block keeps exactly the parameters of its fast twin (same names, shapes and
initialisation), so a state dict loads into either backend. The torch-geometric conv is not a
submodule (that would rename the parameters); it lives on the meta device, its own weights are
never used, and ``torch.func.functional_call`` runs its message passing with the block's.
"""

from __future__ import annotations

import operator

import torch
from torch import Tensor, nn
from torch.func import functional_call


class ReferenceConv:
    """``conv`` (a torch-geometric convolution) as a function of ``block``'s parameters.

    Args:
        conv: builds the convolution (called on the meta device, so it draws no random numbers).
        names: the block's name of each of the conv's parameters, where they differ (default: the same).
    """

    def __init__(self, conv, names: dict[str, str] | None = None):
        with torch.device("meta"):
            self.conv: nn.Module = conv()
        self.names = {n: (names or {}).get(n, n) for n, _ in self.conv.named_parameters()}

    def __call__(self, block: nn.Module, x: Tensor, edge_index: Tensor) -> Tensor:
        params = {n: operator.attrgetter(ours)(block) for n, ours in self.names.items()}
        self.conv.train(block.training)  # attention dropout in training only
        return functional_call(self.conv, params, (x, edge_index))

    def __repr__(self) -> str:
        return f"ReferenceConv({self.conv})"
