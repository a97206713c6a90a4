"""Configs resolved, data loaded and a model built: the start of every run, and of every view of a checkpoint."""

from __future__ import annotations

import dataclasses

import torch

from ..checkpoint import load_checkpoint
from ..config import field_names, from_dict
from ..device import resolve_device
from ..errors import FixptError
from ..registry import MODELS, TASKS
from ..views.base import Trained
from .parts import count_parameters


def fit_hidden(spec, mcfg, in_dim, out_dim, budget: int):
    """The config with the largest ``hidden`` (a multiple of ``mcfg.width_multiple()``) whose model has at most
    ``budget`` trainable parameters; models are built on the meta device, so the search allocates nothing.
    Parameters grow with ``hidden``, so bisection finds it."""
    if "hidden" not in field_names(type(mcfg)):
        raise FixptError(f"param_budget needs a model with a 'hidden' width; {spec.name} has none")
    step = mcfg.width_multiple()

    def size(h: int) -> int:
        with torch.device("meta"):
            return count_parameters(spec.cls(dataclasses.replace(mcfg, hidden=h), in_dim, out_dim))

    if size(step) > budget:
        raise FixptError(f"param_budget={budget} is below the smallest {spec.name} model ({size(step)} parameters at hidden={step})")
    lo, hi = 1, 2
    while size(hi * step) <= budget:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if size(mid * step) <= budget else (lo, mid)
    return dataclasses.replace(mcfg, hidden=lo * step)


def build_model(spec, task, model_cfg: dict, data_cfg: dict, device: torch.device, param_budget: int = 0):
    """Resolve the model and data configs, load the data and build the model: (model, data, mcfg, dcfg)."""
    if not task.trains:
        raise FixptError(f"model {spec.name!r} is not trained (task {task.name}); run it with `fixpt sweep`")
    mcfg = from_dict(spec.config, model_cfg, what=f"{spec.name} config")
    dcfg = from_dict(task.data_config, data_cfg, what="data config")
    data = task.load(dcfg)
    inputs = task.input_spec(data)
    if param_budget:
        mcfg = fit_hidden(spec, mcfg, inputs.in_dim, inputs.out_dim, param_budget)
    model = spec.cls(mcfg, inputs.in_dim, inputs.out_dim)
    return model.to(device), data.to(device), mcfg, dcfg


def load_trained(path, device: str = "auto", checkpoint: dict | None = None, data_root: str = "") -> Trained:
    """Rebuild a trained model and its exact inputs from a checkpoint. ``checkpoint``: the file's contents
    when the caller has already read them (not read again).

    A checkpoint never chooses where data is read from: every data-config field marked
    ``metadata={"location": True}`` (``data_root``) is ``data_root`` here, the caller's choice (empty:
    ``$FIXPT_DATA``, else the default), whatever the checkpoint holds; it names only the data set."""
    ckpt = checkpoint if checkpoint is not None else load_checkpoint(path)
    spec = MODELS.get(ckpt["model"])
    task = TASKS.get(spec.task_for(ckpt.get("task")))
    places = {f.name: data_root for f in dataclasses.fields(task.data_config) if f.metadata.get("location")}
    model, data, _, dcfg = build_model(spec, task, ckpt["config"], {**ckpt["data"], **places}, resolve_device(device))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise FixptError(f"{path}: the stored weights do not fit the '{ckpt['model']}' model of its config "
                         f"({str(e).splitlines()[0][:100]}); the checkpoint is damaged or from another version") from None
    model.eval()
    return Trained(path, spec, task, model, data, dcfg, ckpt)
