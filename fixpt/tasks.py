"""Tasks: how a registered model's data is loaded, scored and split.

A model's registry entry names its task; ``train``, ``iterate`` and ``check-contraction`` only
talk to the task, never to a data set directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .data.graph import GraphDataConfig, load_graph
from .errors import FixptError


class NodeClassification:
    """Full-graph node classification on the standard split; the metric is accuracy."""

    name = "node-classification"
    data_config = GraphDataConfig
    metric = "accuracy"

    def load(self, cfg: GraphDataConfig):
        return load_graph(cfg)

    def dims(self, data) -> tuple[int, int]:
        return data.num_features, int(data.num_classes)

    def loss(self, out: Tensor, data, split: str = "train") -> Tensor:
        mask = getattr(data, f"{split}_mask")
        return F.cross_entropy(out[mask], data.y[mask])

    def score(self, out: Tensor, data, split: str) -> float:
        mask = getattr(data, f"{split}_mask")
        return float((out[mask].argmax(-1) == data.y[mask]).float().mean())


TASKS = {t.name: t for t in (NodeClassification(),)}


def get_task(name: str):
    if name not in TASKS:
        raise FixptError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


def resolve_device(device: str) -> torch.device:
    """The one device decision: ``auto`` is CUDA when present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise FixptError("--device cuda was asked for but no CUDA device is visible; use --device cpu or auto")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise FixptError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)
