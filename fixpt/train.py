"""The one training loop: seeds, device, full-batch Adam, model selection on validation only,
atomic checkpoint and metrics."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .checkpoint import atomic_write, load_checkpoint, save_checkpoint
from .config import from_dict, to_dict
from .errors import DivergenceError, FixptError
from .registry import get_spec
from .tasks import get_task, resolve_device


@dataclass
class TrainConfig:
    epochs: int = field(default=200, metadata={"help": "training epochs (full batch)"})
    lr: float = field(default=0.01, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=5e-4, metadata={"help": "Adam weight decay"})
    patience: int = field(default=100, metadata={"help": "stop after this many epochs without a better validation score"})
    seed: int = field(default=0, metadata={"help": "seed of the model's initialisation and dropout"})
    param_budget: int = field(default=0, metadata={"help": "if > 0: set hidden to the widest that keeps trainable parameters <= this"})
    batch_size: int = field(default=0, metadata={"help": "training samples per step for sample tasks (0: the whole training set)"})

    def validate(self) -> None:
        if self.epochs < 1:
            raise FixptError(f"epochs={self.epochs} must be >= 1")
        if self.batch_size < 0:
            raise FixptError(f"batch_size={self.batch_size} must be >= 0 (0: full batch)")
        if self.param_budget < 0:
            raise FixptError(f"param_budget={self.param_budget} must be >= 0 (0: no budget)")


@dataclass
class FieldTrainConfig(TrainConfig):
    """Training defaults for the field tasks (transformers on Navier-Stokes): minibatches, a smaller step."""

    epochs: int = field(default=100, metadata={"help": "training epochs"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "Adam weight decay"})
    patience: int = field(default=30, metadata={"help": "stop after this many epochs without a better validation score"})
    batch_size: int = field(default=20, metadata={"help": "training samples per step (0: the whole training set)"})
    amp: bool = field(default=True, metadata={"help": "bf16 autocast for the training steps on CUDA (ignored on the CPU)"})


def train_config_of(task) -> type:
    """The training config (and so the defaults) of a task: :class:`TrainConfig` unless it names its own."""
    return getattr(task, "train_config", TrainConfig)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fit_hidden(spec, mcfg, in_dim: int, out_dim: int, budget: int):
    """The config with the largest ``hidden`` (a multiple of ``heads`` for attention models, else of 8)
    whose model has at most ``budget`` trainable parameters; models are built on the meta device,
    so the search allocates nothing. Parameters grow with ``hidden``, so bisection finds it."""
    if not hasattr(mcfg, "hidden"):
        raise FixptError(f"param_budget needs a model with a 'hidden' width; {spec.name} has none")
    step = getattr(mcfg, "heads", 8) if getattr(mcfg, "backbone", "") == "gat" else 8

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


def build(name: str, model_cfg: dict, data_cfg: dict, device: torch.device, param_budget: int = 0, task: str | None = None):
    """Resolve configs, load the data and build the model: (spec, task, model, data, cfgs). ``task``
    picks one of the model's tasks (None: its default)."""
    spec = get_spec(name)
    task = get_task(spec.task_for(task))
    if not task.trains:
        raise FixptError(f"model {name!r} is not trained (task {task.name}); run it with `fixpt recycle` or `fixpt sweep`")
    mcfg = from_dict(spec.config, model_cfg, what=f"{name} config")
    dcfg = from_dict(task.data_config, data_cfg, what="data config")
    data = task.load(dcfg)
    in_dim, out_dim = task.dims(data)
    if param_budget:
        mcfg = fit_hidden(spec, mcfg, in_dim, out_dim, param_budget)
    model = spec.cls(mcfg, in_dim, out_dim)
    return spec, task, model.to(device), data.to(device), mcfg, dcfg


def evaluate(model, task, data) -> dict:
    model.eval()
    with torch.no_grad():
        out = model(data)
        metric = task.metric_of(data)
        return {"val_loss": float(task.loss(out, data, "val")),
                **{f"{s}_{metric}": task.score(out, data, s) for s in ("train", "val", "test")}}


def train(name: str, model_cfg: dict, data_cfg: dict, train_cfg: dict, *, out: str | Path | None = None,
          device: str = "auto", on_epoch: Callable[[int, dict], None] | None = None, save_ckpt: bool = True,
          task: str | None = None) -> dict:
    """Train ``name``; write ``out/ckpt.pt`` (unless ``save_ckpt`` is False) and then ``out/metrics.json``
    (each atomically, metrics last: a run with ``metrics.json`` is complete) and return the metrics.

    The reported test score is the one at the epoch of best validation score (highest accuracy,
    lowest MSE; ties: lower validation loss); the test split is never used to choose anything.
    """
    spec = get_spec(name)
    fit = getattr(get_task(spec.task_for(task)), "fit", None)
    if fit is not None:  # a task with its own loop (DDPM: steps, EMA, resumable state, DDP)
        return fit(name, model_cfg, data_cfg, train_cfg, out=out, device=device, on_epoch=on_epoch, save_ckpt=save_ckpt, task=task)
    dev = resolve_device(device)
    tcfg = from_dict(train_config_of(get_task(spec.task_for(task))), train_cfg, what="train config")
    seed_everything(tcfg.seed)
    spec, task, model, data, mcfg, dcfg = build(name, model_cfg, data_cfg, dev, tcfg.param_budget, task)
    opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)

    metric = task.metric_of(data)
    sign = 1.0 if getattr(task, "higher_is_better", True) else -1.0  # the validation score is maximised as sign * score
    if tcfg.batch_size and not hasattr(data, "subset"):
        raise FixptError(f"batch_size applies to tasks with independent samples; {task.name} trains on one whole graph (use 0)")
    train_index = data.train_mask.nonzero().flatten() if tcfg.batch_size else None
    use_amp = getattr(tcfg, "amp", False) and dev.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else contextlib.nullcontext
    best = {"key": (-math.inf, -math.inf)}
    start, since_best = time.perf_counter(), 0
    for epoch in range(1, tcfg.epochs + 1):
        model.train()
        if train_index is None:
            batches = [data]
        else:
            order = train_index[torch.randperm(len(train_index), device=train_index.device)]
            batches = [data.subset(order[i:i + tcfg.batch_size]) for i in range(0, len(order), tcfg.batch_size)]
        losses = []
        for batch in batches:
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = task.loss(model(batch), batch, "train")
            if not torch.isfinite(loss):
                raise DivergenceError(f"training loss became {float(loss)} at epoch {epoch}; lower --lr, raise --alpha or use --contractive")
            loss.backward()
            opt.step()
            losses.append(loss.item())
        ev = evaluate(model, task, data)
        ev["train_loss"] = sum(losses) / len(losses)
        key = (sign * ev[f"val_{metric}"], -ev["val_loss"])
        if key > best["key"]:
            best = {"key": key, "epoch": epoch, "state": copy.deepcopy(model.state_dict()), **ev}
            since_best = 0
        else:
            since_best += 1
        if on_epoch is not None:
            on_epoch(epoch, ev)
        if since_best >= tcfg.patience:
            break

    return finish_run(name, task, model, data, mcfg, dcfg, tcfg, best, epoch, time.perf_counter() - start, dev,
                      out=out, save_ckpt=save_ckpt, last=ev)


def finish_run(name: str, task, model, data, mcfg, dcfg, tcfg, best: dict, epochs_run: int, seconds: float, dev,
               *, out: str | Path | None, save_ckpt: bool, last: dict, extra: dict | None = None) -> dict:
    """Load the best epoch's weights, evaluate once more (the final solve's statistics), write
    ``ckpt.pt`` (unless ``save_ckpt`` is False) and then ``metrics.json``, and return the metrics.

    Two protocols are recorded: ``test_<metric>`` at the epoch of best validation score (fixpt's
    selection; the checkpoint holds that epoch's weights) and ``test_<metric>_last_epoch`` (with
    ``val_<metric>_last_epoch``) from ``last``, the evaluation after the last epoch run: the paper's
    protocol, which reports the model as training leaves it."""
    metric = task.metric_of(data)
    model.load_state_dict(best["state"])
    evaluate(model, task, data)  # leaves the final (eval-mode) solve in model.last_solution
    metrics = {
        "model": name,
        "task": task.name,
        f"val_{metric}": best[f"val_{metric}"],
        f"test_{metric}": best[f"test_{metric}"],
        f"train_{metric}": best[f"train_{metric}"],
        "val_loss": best["val_loss"],
        f"test_{metric}_last_epoch": last[f"test_{metric}"],
        f"val_{metric}_last_epoch": last[f"val_{metric}"],
        "best_epoch": best["epoch"],
        "epochs_run": epochs_run,
        "seconds": seconds,
        "parameters": count_parameters(model),
        "hidden": getattr(mcfg, "hidden", None),
        "device": str(dev),
        **(extra or {}),
    }
    solution = getattr(model, "last_solution", None)
    if solution is not None:
        metrics.update(n_iter=solution.n_iter, converged=solution.converged,
                       final_residual=float(solution.residual.max()) if solution.n_iter else None,
                       residual_trace=solution.rel_trace.max(dim=1).values.tolist())  # relative, per iteration
    elif hasattr(model, "n_iter"):  # a model that stops by its own rule (IterGNN)
        metrics["n_iter"] = model.n_iter
    if out is not None:
        out = Path(out)
        if save_ckpt:
            save_checkpoint(out / "ckpt.pt", model=name, config=to_dict(mcfg), data=to_dict(dcfg),
                            state_dict=best["state"], train=to_dict(tcfg), metrics=metrics, task=task.name)
        atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2) + "\n"))
    return metrics


def _upgrade_state_dict(state: dict, model: torch.nn.Module) -> dict:
    """Checkpoints of fixpt 0.1 kept the input layer of PIGN / IterGNN at ``encoder.1`` (after a
    separate dropout module); it is ``encoder.0`` now."""
    own = model.state_dict()
    if "encoder.0.weight" in own and "encoder.0.weight" not in state and "encoder.1.weight" in state:
        return {("encoder.0." + k[len("encoder.1."):] if k.startswith("encoder.1.") else k): v for k, v in state.items()}
    return state


def load_trained(path: str | Path, device: str = "auto", checkpoint: dict | None = None):
    """Rebuild a trained model and its exact inputs from a checkpoint: (spec, task, model, data, ckpt).
    ``checkpoint``: the file's contents when the caller has already read them (not read again)."""
    ckpt = checkpoint if checkpoint is not None else load_checkpoint(path)
    dev = resolve_device(device)
    spec, task, model, data, _, _ = build(ckpt["model"], ckpt["config"], ckpt["data"], dev, task=ckpt.get("task"))
    try:
        model.load_state_dict(_upgrade_state_dict(ckpt["state_dict"], model))
    except RuntimeError as e:
        raise FixptError(f"{path}: the stored weights do not fit the '{ckpt['model']}' model of its config "
                         f"({str(e).splitlines()[0][:100]}); the checkpoint is damaged or from another version") from None
    model.eval()
    return spec, task, model, data, ckpt
