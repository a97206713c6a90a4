"""The ``backbone`` option the graph models share (``pign``, ``itergnn``, ``gnn``): one of fixpt's blocks (``gcn``,
``gat``, ``sage``: CSR kernels, the fast path) or ``pyg:NAME``, any ``torch_geometric.nn`` convolution by class
name, built with ``block_kwargs`` (a JSON object) as its extra constructor arguments
(:mod:`fixpt.models.kernels.pyg`)."""

from __future__ import annotations

import json

import torch

from ..errors import FixptError
from .blocks import BACKBONES, is_pyg
from .kernels.pyg import PREFIX, build_conv
from .widths import GraphWidth

BACKBONE_HELP = (f"GNN block: {', '.join(BACKBONES)} (fixpt's fast kernels) or pyg:NAME, any torch_geometric.nn convolution "
                 "by class name (e.g. pyg:GINConv; torch-geometric's own, slower)")
BLOCK_KWARGS_HELP = ("pyg: backbones: extra constructor arguments as a JSON object, e.g. '{\"eps\": 0.1, \"train_eps\": true}' "
                     "(in a preset, a mapping); widths are set from hidden and GIN's nn defaults to an MLP")


class GraphBackbone(GraphWidth):
    """The methods of a graph model's config over its ``backbone``, ``block_kwargs`` and ``hidden`` fields."""

    def block_arguments(self) -> dict:
        """``block_kwargs`` parsed: a JSON object (YAML flow syntax accepted, which is what a preset's mapping becomes)."""
        text = self.block_kwargs.strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            import yaml

            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError:
                value = None
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise FixptError(f"block_kwargs must be a JSON object of constructor arguments, e.g. '{{\"eps\": 0.1}}'; got {text[:80]!r}")
        return value

    def validate_backbone(self) -> None:
        """A pyg: backbone is built once on a 3-node graph, so a bad name or argument fails here, before any data is read."""
        if is_pyg(self.backbone):
            with torch.random.fork_rng(devices=[]):  # validating draws nothing from the run's random stream
                build_conv(self.backbone.removeprefix(PREFIX), self.hidden, self.block_arguments())
        elif self.backbone not in BACKBONES:
            raise FixptError(f"unknown backbone {self.backbone!r}; use one of {', '.join(BACKBONES)}, or pyg:NAME for a "
                             "torch_geometric.nn convolution (e.g. pyg:GINConv)")
        elif self.block_arguments():
            raise FixptError(f"block_kwargs configure pyg: backbones only; backbone {self.backbone!r} takes none (leave it empty)")
