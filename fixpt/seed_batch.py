r"""Seed-batched training: the seeds of one configuration trained together as one batched model.

The runs of a sweep that differ only in their seed share the graph, the architecture and every
hyper-parameter. Their weights are stacked along a new leading dimension
(``torch.func.stack_module_state``) and one ``torch.func.vmap`` of the model's functional form
(``functional_call``) runs every seed's forward pass at once: the sparse products take the seeds
as extra columns or as a block-diagonal pattern (:mod:`fixpt.models.kernels.csr`), GAT's attention
takes them as extra heads (:mod:`fixpt.models.kernels.gat`), dense layers become batched products, and
the fixed-point solve freezes a converged seed instead of stopping (``solve(frozen=True)``, set by
:func:`fixpt.models.base.seed_batch_mode`). Seed batches need the fast kernels (the default backend).

Why seed :math:`s` of the batch is seed :math:`s`'s own run:

* its model is built after ``seed_everything(s)``, exactly as :func:`fixpt.train.train` builds it;
* the loss is the sum :math:`\sum_s L_s(\theta_s)`, so :math:`\partial/\partial\theta_s` of it is
  :math:`\nabla L_s(\theta_s)`: the seeds do not interact;
* Adam with L2 weight decay acts elementwise, so one Adam over the stacked weights is one Adam per seed;
* model selection (best validation score, ties to the lower validation loss) and early stopping are
  per seed: a seed whose patience has run out leaves the batch (its weights and Adam moments are
  dropped from the stack), and so does a seed whose loss is not finite (recorded as failed).

What differs from separate runs: the dropout masks of the batch are drawn from one generator
seeded by the batch's seeds, not from seed :math:`s`'s own stream. A batched seed therefore has the
same distribution as ``fixpt train --seed s`` but not the same bits; with dropout off it is the
same run up to float rounding (``tests/test_seed_batch.py``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import time
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap
from torch.nn.utils import parametrize

from .config import from_dict, to_dict
from .device import resolve_device
from .errors import DivergenceError, FixptError
from .models import kernels
from .models.base import IterativeModel, seed_batch_mode
from .registry import get_spec
from .tasks import get_task
from .training.build import build_model
from .training.loop import SPLITS, Finished, finish_run
from .training.parts import BestEpoch, seed_everything
from .tracking import RunLog, flatten
from .training.rundir import CKPT, RunDir


def unbatchable_reason(name: str, model_cfg: dict, train_cfg: dict, task: str | None = None) -> str | None:
    """Why the runs of this configuration cannot be trained as one seed batch (None: they can)."""
    spec = get_spec(name)
    task_obj = get_task(spec.task_for(task))
    if not task_obj.seed_batches:
        return f"task {task_obj.name} trains one run at a time"
    if kernels.backend() == "reference":
        return "the reference graph kernels (FIXPT_KERNELS=reference, or the fast ones failed their self-check) have no vmap rules"
    if train_cfg.get("batch_size", 0):
        return "minibatches (batch_size > 0)"
    if train_cfg.get("jac_penalty", 0) or train_cfg.get("warm_start", False):
        return "a Jacobian penalty or warm starts (per-run solver state)"
    if train_cfg.get("op_lr_scale", 1.0) != 1.0:
        return "a separate learning rate for the operator's weights (--op-lr-scale)"
    if model_cfg.get("contractive"):
        return "spectrally normalised (--contractive) weights"
    if str(model_cfg.get("backbone", "")).startswith("pyg:"):
        return f"a torch-geometric convolution ({model_cfg['backbone']}) has no vmap rules (seed batches need fixpt's fast kernels)"
    if issubclass(spec.cls, IterativeModel):
        if model_cfg.get("solver", "picard") != "picard":
            return f"solver {model_cfg['solver']!r} (seed batches support picard)"
        if model_cfg.get("grad", "unroll") not in ("unroll", "last"):
            return f"grad {model_cfg['grad']!r} (seed batches support unroll and last)"
    return None


def batch_generator_seed(seeds: list[int]) -> int:
    """The seed of the batch's dropout draws: a function of its seeds only, so a rerun draws the same masks."""
    return int(hashlib.sha1(json.dumps(sorted(seeds)).encode()).hexdigest()[:12], 16)


class _Stack:
    """The seeds still training: their stacked weights, buffers and Adam state, and which seed each row is."""

    def __init__(self, models: list[torch.nn.Module], tcfg):
        self.base = copy.deepcopy(models[0]).to("meta")  # the architecture; the weights come from the stack
        self.params, self.buffers = stack_module_state(models)
        self.names = list(self.params)
        self.active = list(range(len(models)))  # indices into the seeds of the rows of the stack
        self.tcfg = tcfg
        self.opt = torch.optim.Adam(self.params.values(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)

    def forward(self, p: dict, b: dict, data):
        return functional_call(self.base, (p, b), (data,))

    def keep(self, rows: list[int]) -> None:
        """Restrict the stack and its Adam state to ``rows`` (the seeds still training)."""
        new = {n: p.detach()[rows].clone().requires_grad_(True) for n, p in self.params.items()}
        opt = torch.optim.Adam(new.values(), lr=self.tcfg.lr, weight_decay=self.tcfg.weight_decay)
        for n, p in self.params.items():
            old = self.opt.state.get(p)
            if old:
                opt.state[new[n]] = {k: (v[rows].clone() if k != "step" else v.clone()) for k, v in old.items()}
        self.params, self.opt = new, opt
        self.buffers = {n: b[rows] for n, b in self.buffers.items()}
        self.active = [self.active[r] for r in rows]


def _build_seeds(name: str, model_cfg: dict, data_cfg: dict, train_cfg: dict, seeds: list[int], dev, task: str | None):
    """Every seed's model, initialised exactly as ``train`` draws it, and the shared data and configs."""
    spec = get_spec(name)
    task_obj = get_task(spec.task_for(task))
    tcfgs = [from_dict(task_obj.train_config, {**train_cfg, "seed": s}, what="train config") for s in seeds]
    models = []
    for s in seeds:
        seed_everything(s)
        model, data, mcfg, dcfg = build_model(spec, task_obj, model_cfg, data_cfg, dev, tcfgs[0].param_budget)
        if any(parametrize.is_parametrized(m) for m in model.modules()):
            raise FixptError(f"{name} has parametrised weights, which seed batches do not support")
        models.append(model)
    return task_obj, models, data, (mcfg, dcfg), tcfgs


def train_seeds(name: str, model_cfg: dict, data_cfg: dict, train_cfg: dict, seeds: list[int], *,
                outs: list[Path] | None = None, device: str = "auto", save_ckpt: bool = True,
                task: str | None = None, trackers: list | None = None) -> list[dict | Exception]:
    """Train the runs ``seeds`` of one configuration as one batch; return, per seed, its metrics (as
    :func:`fixpt.train.train` returns them, written to ``outs[i]`` when given, with its ``history.csv``) or
    the exception that failed it. ``train_cfg["seed"]`` is ignored: ``seeds`` replaces it. ``trackers[i]``:
    seed i's :class:`fixpt.tracking.TrackerSpec` (None: none). A seed batch is not resumable: a killed one
    trains again from its first epoch."""
    reason = unbatchable_reason(name, model_cfg, train_cfg, task)
    if reason is not None:
        raise FixptError(f"{name} cannot be trained as a seed batch: {reason}; train its seeds one at a time")
    if len(set(seeds)) != len(seeds) or not seeds:
        raise FixptError(f"a seed batch needs distinct seeds; got {seeds}")
    dev = resolve_device(device)
    folders = [RunDir(outs[i] if outs else None) for i in range(len(seeds))]
    logs = [RunLog.open(folders[i], trackers[i] if trackers else None, f"{name}-seed{s}") for i, s in enumerate(seeds)]
    task_obj, models, data, (mcfg, dcfg), tcfgs = _build_seeds(name, model_cfg, data_cfg, train_cfg, seeds, dev, task)
    torch.manual_seed(batch_generator_seed(seeds))
    metric = task_obj.metric_for(dcfg)
    best = [BestEpoch(metric.name, metric.higher_is_better, tcfgs[0].patience) for _ in seeds]
    errors: dict[int, Exception] = {}
    with contextlib.ExitStack() as open_logs:  # a batch that raises closes every seed's tracked run as failed
        for log, tcfg in zip(logs, tcfgs):
            open_logs.enter_context(log).start(flatten({"model": to_dict(mcfg), "data": to_dict(dcfg), "train": to_dict(tcfg)}),
                                               {"model": name, "task": task_obj.name, "seed_batch": str(len(seeds))})
        start = time.perf_counter()
        best_weights = _train_stack(_Stack(models, tcfgs[0]), task_obj, data, metric, best, errors, logs)
        seconds = (time.perf_counter() - start) / len(seeds)
        results: list[dict | Exception] = []
        for i, tracker in enumerate(best):
            if i in errors:
                results.append(errors[i])
                logs[i].fail()
                continue
            # the best epoch's weights, and the buffers (none is trained) beside them
            tracker.best["state"] = {**{n: w[i] for n, w in best_weights.items()}, **dict(models[i].named_buffers())}
            run = Finished(name, task_obj, models[i], data, metric, (mcfg, dcfg, tcfgs[i]), dev, seconds, {"seed_batch": len(seeds)})
            results.append(finish_run(run, tracker, folders[i], save_ckpt=save_ckpt))
            logs[i].finish(results[-1], folders[i] / CKPT if save_ckpt and folders[i].path is not None else None)
    return results


def _train_stack(stack: _Stack, task_obj, data, metric, trackers: list[BestEpoch], errors: dict, logs: list[RunLog]) -> dict:
    """The epochs of a seed batch; returns each weight's rows at every seed's best epoch (row i: seed i), and
    writes each seed's epoch to its record ``logs[i]`` (history.csv, tracker)."""
    batched_loss = vmap(lambda p, b: task_obj.loss(stack.forward(p, b, data), data, "train"), randomness="different")
    batched_forward = vmap(lambda p, b: stack.forward(p, b, data))
    nodes = {split: data[f"{split}_mask"].nonzero().squeeze(1) for split in SPLITS}
    best_weights = {n: torch.empty_like(p) for n, p in stack.params.items()}
    for epoch in range(1, stack.tcfg.epochs + 1):
        stack.base.train()
        stack.opt.zero_grad(set_to_none=True)
        with seed_batch_mode(stack.base):
            losses = batched_loss(stack.params, stack.buffers)
        torch.where(torch.isfinite(losses), losses, 0.0).sum().backward()  # a failed seed leaves below
        stack.opt.step()
        stack.base.eval()
        with torch.no_grad(), seed_batch_mode(stack.base):
            out = batched_forward(stack.params, stack.buffers)
            evals = _evaluate_stack(task_obj, out, data, metric, losses.detach(), nodes)  # the epoch's one transfer
        improved, leaving = _record(epoch, evals, stack.active, trackers, errors)
        for row, i in enumerate(stack.active):
            if i not in errors:
                logs[i].row(epoch, evals[row])
        if improved:  # one copy per weight tensor for all the seeds that improved
            rows = torch.tensor(improved, device=out.device)
            seeds_of_rows = torch.tensor([stack.active[r] for r in improved], device=out.device)
            for n in stack.names:
                best_weights[n][seeds_of_rows] = stack.params[n].detach()[rows]
        if leaving:
            keep = [row for row in range(len(stack.active)) if row not in set(leaving)]
            if not keep:
                break
            stack.keep(keep)
    return best_weights


def _record(epoch: int, evals: list[dict], active: list[int], trackers: list[BestEpoch], errors: dict) -> tuple[list, list]:
    """Each active seed's epoch into its tracker; returns the rows that improved and the rows that leave the
    batch (patience run out, or a non-finite loss or output: then the seed fails with a DivergenceError)."""
    improved, leaving = [], []
    for row, i in enumerate(active):
        ev = evals[row]
        if not math.isfinite(ev["train_loss"]):
            errors[i] = DivergenceError(f"training loss became {ev['train_loss']} at epoch {epoch}; "
                                        "lower --lr, raise --alpha or use --contractive")
        elif not ev.pop("finite"):
            errors[i] = DivergenceError(f"the evaluation pass produced non-finite values at epoch {epoch}; "
                                        "raise alpha, lower the learning rate or use --contractive")
        elif trackers[i].update(epoch, ev):
            improved.append(row)
        if i in errors or trackers[i].exhausted:
            trackers[i].epochs_run = epoch
            leaving.append(row)
    return improved, leaving


def _evaluate_stack(task_obj, out: torch.Tensor, data, metric, train_loss: torch.Tensor,
                    nodes: dict[str, torch.Tensor]) -> list[dict]:
    """Per seed (row of ``out``, seeds x nodes x classes): whether its output is finite, its training
    loss (given), its validation loss and its score on each split, as the task's ``loss`` and ``score``
    give them, computed for all rows at once and moved to the host in one transfer. ``nodes``: each
    split's node indices."""
    columns = {"finite": torch.isfinite(out).flatten(1).all(1).to(out.dtype), "train_loss": train_loss.to(out.dtype)}
    val = nodes["val"]
    columns["val_loss"] = torch.nn.functional.cross_entropy(
        out[:, val].transpose(1, 2), data.y[val].expand(out.shape[0], -1), reduction="none").mean(1)
    if metric.name == "accuracy":
        for split, idx in nodes.items():
            columns[f"{split}_accuracy"] = (out[:, idx].argmax(-1) == data.y[idx]).to(out.dtype).mean(1)
    host = torch.stack(list(columns.values())).cpu().tolist()
    rows = [{k: host[j][row] for j, k in enumerate(columns)} for row in range(out.shape[0])]
    for row, ev in enumerate(rows):
        ev["finite"] = bool(ev["finite"])
        if metric.name != "accuracy" and ev["finite"]:  # e.g. macro F1, which counts per class: one row at a time
            ev.update({f"{s}_{metric.name}": task_obj.score(out[row], data, s, metric) for s in SPLITS})
    return rows
