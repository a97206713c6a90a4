"""Training, as the Python API: ``train(name, model_config, data, train)`` runs the task's loop.

The loop itself is the task's (:meth:`fixpt.tasks.Task.fit`; by default the epoch loop of
:mod:`fixpt.training.loop`); this module resolves the model and its task and re-exports the parts
callers use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from .registry import get_spec
from .tasks import FitRequest, get_task
from .training.build import build_model, fit_hidden, load_trained
from .training.config import FieldTrainConfig, TrainConfig
from .training.loop import evaluate, finish_run
from .training.parts import count_parameters, seed_everything

__all__ = ["train", "build", "load_trained", "fit_hidden", "evaluate", "finish_run", "count_parameters", "seed_everything",
           "TrainConfig", "FieldTrainConfig"]


def train(name: str, model_cfg: dict, data_cfg: dict, train_cfg: dict, *, out: str | Path | None = None,
          device: str = "auto", on_epoch: Callable[[int, dict], None] | None = None, save_ckpt: bool = True,
          task: str | None = None, tracker=None) -> dict:
    """Train model ``name`` on ``task`` (None: its default); write ``out/ckpt.pt`` (unless ``save_ckpt`` is False)
    and then ``out/metrics.json`` (each atomically, metrics last: a run with ``metrics.json`` is complete) and
    return the metrics. ``on_epoch(epoch, evaluation)`` is called after every epoch (or logging step), each of
    which is also a row of ``out/history.csv``; ``tracker`` (a :class:`fixpt.tracking.TrackerSpec`) sends the
    run to TensorBoard or MLflow."""
    spec = get_spec(name)
    request = FitRequest(name, model_cfg, data_cfg, train_cfg, Path(out) if out is not None else None, device, on_epoch, save_ckpt,
                         tracker)
    return get_task(spec.task_for(task)).fit(spec, request)


def build(name: str, model_cfg: dict, data_cfg: dict, device: torch.device, param_budget: int = 0, task: str | None = None):
    """Resolve configs, load the data and build the model: (spec, task, model, data, model config, data config)."""
    spec = get_spec(name)
    task_obj = get_task(spec.task_for(task))
    model, data, mcfg, dcfg = build_model(spec, task_obj, model_cfg, data_cfg, device, param_budget)
    return spec, task_obj, model, data, mcfg, dcfg
