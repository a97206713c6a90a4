"""The task interface: every registered task is complete, and each says its metric and direction once."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fixpt.data.graph import GraphDataConfig
from fixpt.registry import TASKS
from fixpt.tasks import InputSpec, Metric, Task, get_task


@pytest.mark.parametrize("name", TASKS.names())
def test_every_task_is_a_task_with_typed_configs(name):
    task = get_task(name)
    assert isinstance(task, Task) and task.name == name and isinstance(task.metric, Metric)
    assert dataclasses.is_dataclass(task.data_config) and dataclasses.is_dataclass(task.run_config)
    assert task.higher_is_better is task.metric.higher_is_better


def test_directions_are_the_metrics():
    directions = {n: get_task(n).higher_is_better for n in TASKS.names()}
    assert directions == {"node-classification": True, "navier-stokes": False, "ns-initial": False, "masked-pixels": False,
                          "image-generation": False, "structure-recycling": True}


def test_the_graph_metric_follows_the_data_set():
    task = get_task("node-classification")
    assert task.metric_for(GraphDataConfig(dataset="cora")) == Metric("accuracy")
    assert task.metric_for(GraphDataConfig(dataset="pascalvoc-sp")) == Metric("f1")


def test_scores_against_a_hand_count():
    task = get_task("node-classification")
    data = task.load(GraphDataConfig(csbm_nodes=200))
    out = torch.nn.functional.one_hot(data.y, int(data.num_classes)).float()
    out[data.test_mask.nonzero()[:5, 0]] = torch.roll(out[data.test_mask.nonzero()[:5, 0]], 1, dims=1)  # 5 test nodes wrong
    n_test = int(data.test_mask.sum())
    assert task.score(out, data, "test", Metric("accuracy")) == pytest.approx((n_test - 5) / n_test)
    assert task.score(out, data, "train", Metric("accuracy")) == 1.0


def test_input_specs_are_frozen_dataclasses():
    task = get_task("node-classification")
    spec = task.input_spec(task.load(GraphDataConfig(csbm_nodes=200, csbm_features=12, csbm_classes=3)))
    assert spec == InputSpec(12, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.in_dim = 5
