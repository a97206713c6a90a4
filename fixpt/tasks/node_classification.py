"""Full-graph node classification: the task of the GNN families (``gnn``, ``itergnn``, ``pign``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.graph import GraphDataConfig, load_graph
from ..registry import register_task
from .base import InputSpec, Metric, Task

F1_DATASETS = ("pascalvoc-sp",)  # scored by macro F1 (the LRGB metric), every other data set by accuracy


@register_task
class NodeClassification(Task):
    """Full-graph node classification on the standard split, scored by accuracy, or by macro F1 on the
    data sets of :data:`F1_DATASETS` (LRGB PascalVOC-SP, see :mod:`fixpt.data.lrgb`)."""

    name = "node-classification"
    data_config = GraphDataConfig
    seed_batches = True

    def metric_for(self, data_config) -> Metric:
        return Metric("f1") if data_config.dataset in F1_DATASETS else self.metric

    def load(self, data_config: GraphDataConfig):
        return load_graph(data_config)

    def input_spec(self, data) -> InputSpec:
        return InputSpec(data.num_features, int(data.num_classes))

    def loss(self, out: Tensor, data, split: str = "train") -> Tensor:
        mask = data[f"{split}_mask"]
        return F.cross_entropy(out[mask], data.y[mask])

    def score(self, out: Tensor, data, split: str, metric: Metric) -> float:
        mask = data[f"{split}_mask"]
        pred, target = out[mask].argmax(-1), data.y[mask]
        if metric.name == "f1":
            return macro_f1(pred, target, out.shape[-1])
        return float((pred == target).float().mean())


def macro_f1(pred: Tensor, target: Tensor, num_classes: int) -> float:
    r"""Macro-averaged F1 over the classes present in ``target`` or ``pred`` (scikit-learn's
    ``f1_score(average="macro")``, the LRGB metric): :math:`F_1^c = 2TP_c / (2TP_c + FP_c + FN_c)`."""
    cm = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    tp = cm.diagonal().double()
    fp, fn = cm.sum(0).double() - tp, cm.sum(1).double() - tp
    present = (cm.sum(0) + cm.sum(1)) > 0
    f1 = 2 * tp / (2 * tp + fp + fn).clamp_min(1)
    return float(f1[present].mean()) if present.any() else 0.0
