r"""Seed-batched training: the seeds of one configuration trained together as one batched model.

The runs of a sweep that differ only in their seed share the graph, the architecture and every
hyper-parameter. Their weights are stacked along a new leading dimension
(``torch.func.stack_module_state``) and one ``torch.func.vmap`` of the model's functional form
(``functional_call``) runs every seed's forward pass at once: the sparse products take the seeds
as extra columns or as a block-diagonal pattern (:mod:`fixpt.models.sparse`), GAT's attention
takes them as extra heads (:mod:`fixpt.models.gat`), dense layers become batched products, and
the fixed-point solve freezes a converged seed instead of stopping (:func:`fixpt.solve.without_sync`).

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

import copy
import hashlib
import json
import math
import time
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap
from torch.nn.utils import parametrize

from .config import from_dict
from .errors import DivergenceError, FixptError
from .models.base import IterativeModel
from .registry import get_spec
from .solve import without_sync
from .tasks import get_task, resolve_device
from .train import build, finish_run, seed_everything, train_config_of


def unbatchable_reason(name: str, model_cfg: dict, train_cfg: dict, task: str | None = None) -> str | None:
    """Why the runs of this configuration cannot be trained as one seed batch (None: they can)."""
    spec = get_spec(name)
    task_obj = get_task(spec.task_for(task))
    if task_obj.name != "node-classification":
        return f"task {task_obj.name} trains one run at a time"
    if train_cfg.get("batch_size", 0):
        return "minibatches (batch_size > 0)"
    if model_cfg.get("contractive"):
        return "spectrally normalised (--contractive) weights"
    if issubclass(spec.cls, IterativeModel):
        if model_cfg.get("solver", "picard") != "picard":
            return f"solver {model_cfg['solver']!r} (seed batches support picard)"
        if model_cfg.get("grad", "unroll") not in ("unroll", "last"):
            return f"grad {model_cfg['grad']!r} (seed batches support unroll and last)"
    return None


def batch_generator_seed(seeds: list[int]) -> int:
    """The seed of the batch's dropout draws: a function of its seeds only, so a rerun draws the same masks."""
    return int(hashlib.sha1(json.dumps(sorted(seeds)).encode()).hexdigest()[:12], 16)


class _SeedState:
    """One seed's bookkeeping: best epoch so far, epochs without improvement, outcome."""

    def __init__(self):
        self.best: dict = {"key": (-math.inf, -math.inf)}
        self.since_best = 0
        self.epochs_run = 0
        self.last: dict = {}  # the evaluation after the last epoch run (the last-epoch protocol)
        self.error: Exception | None = None


def train_seeds(name: str, model_cfg: dict, data_cfg: dict, train_cfg: dict, seeds: list[int], *,
                outs: list[Path] | None = None, device: str = "auto", save_ckpt: bool = True,
                task: str | None = None) -> list[dict | Exception]:
    """Train the runs ``seeds`` of one configuration as one batch; return, per seed, its metrics (as
    :func:`fixpt.train.train` returns them, written to ``outs[i]`` when given) or the exception that
    failed it. ``train_cfg["seed"]`` is ignored: ``seeds`` replaces it."""
    reason = unbatchable_reason(name, model_cfg, train_cfg, task)
    if reason is not None:
        raise FixptError(f"{name} cannot be trained as a seed batch: {reason}; train its seeds one at a time")
    if len(set(seeds)) != len(seeds) or not seeds:
        raise FixptError(f"a seed batch needs distinct seeds; got {seeds}")
    dev = resolve_device(device)
    spec = get_spec(name)
    tcfg_cls = train_config_of(get_task(spec.task_for(task)))
    tcfgs = [from_dict(tcfg_cls, {**train_cfg, "seed": s}, what="train config") for s in seeds]
    tcfg = tcfgs[0]
    models = []
    for s in seeds:  # each seed's initialisation exactly as `train` draws it
        seed_everything(s)
        spec, task_obj, model, data, mcfg, dcfg = build(name, model_cfg, data_cfg, dev, tcfg.param_budget, task)
        if any(parametrize.is_parametrized(m) for m in model.modules()):
            raise FixptError(f"{name} has parametrised weights, which seed batches do not support")
        models.append(model)
    torch.manual_seed(batch_generator_seed(seeds))

    base = copy.deepcopy(models[0]).to("meta")  # the architecture; the weights come from the stack
    params, buffers = stack_module_state(models)
    names = list(params)

    def forward(p: dict, b: dict):
        return functional_call(base, (p, b), (data,))

    def train_loss(p: dict, b: dict):
        return task_obj.loss(forward(p, b), data, "train")

    batched_loss = vmap(train_loss, randomness="different")
    batched_forward = vmap(forward)
    metric = task_obj.metric_of(data)
    sign = 1.0 if getattr(task_obj, "higher_is_better", True) else -1.0
    states = [_SeedState() for _ in seeds]  # in the order of seeds
    active = list(range(len(seeds)))  # indices into seeds of the rows of the stack
    opt = torch.optim.Adam(params.values(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    nodes = {split: getattr(data, f"{split}_mask").nonzero().squeeze(1) for split in ("train", "val", "test")}
    best_weights = {n: torch.empty_like(p) for n, p in params.items()}  # row i: seed i's best epoch
    start = time.perf_counter()

    for epoch in range(1, tcfg.epochs + 1):
        base.train()
        opt.zero_grad(set_to_none=True)
        with without_sync():
            losses = batched_loss(params, buffers)
        torch.where(torch.isfinite(losses), losses, 0.0).sum().backward()  # a failed seed leaves below
        opt.step()

        base.eval()
        with torch.no_grad(), without_sync():
            out = batched_forward(params, buffers)
            evals = _evaluate_stack(task_obj, out, data, metric, losses.detach(), nodes)  # the epoch's one transfer
        leaving, improved = [], []
        for row, i in enumerate(active):
            st = states[i]
            st.epochs_run = epoch
            if not math.isfinite(evals[row]["train_loss"]):
                st.error = DivergenceError(f"training loss became {evals[row]['train_loss']} at epoch {epoch}; "
                                           "lower --lr, raise --alpha or use --contractive")
                leaving.append(row)
                continue
            if not evals[row]["finite"]:
                st.error = DivergenceError(f"the evaluation pass produced non-finite values at epoch {epoch}; "
                                           "raise alpha, lower the learning rate or use --contractive")
                leaving.append(row)
                continue
            ev = {k: v for k, v in evals[row].items() if k != "finite"}
            st.last = ev
            key = (sign * ev[f"val_{metric}"], -ev["val_loss"])
            if key > st.best["key"]:
                st.best = {"key": key, "epoch": epoch, **ev}
                improved.append(row)
                st.since_best = 0
            else:
                st.since_best += 1
            if st.since_best >= tcfg.patience:
                leaving.append(row)
        if improved:  # one copy per weight tensor for all the seeds that improved
            rows, seeds_of_rows = torch.tensor(improved, device=dev), torch.tensor([active[r] for r in improved], device=dev)
            for n in names:
                best_weights[n][seeds_of_rows] = params[n].detach()[rows]
        if leaving:
            gone = set(leaving)
            keep = [row for row in range(len(active)) if row not in gone]
            active = [active[row] for row in keep]
            if not active:
                break
            params, opt = _shrink(params, opt, keep, tcfg)
            buffers = {n: b[keep] for n, b in buffers.items()}

    seconds = (time.perf_counter() - start) / len(seeds)
    results: list[dict | Exception] = []
    for i, st in enumerate(states):
        if st.error is not None:
            results.append(st.error)
            continue
        # the best epoch's weights, and the buffers (none is trained) beside them
        state = {**{n: best_weights[n][i] for n in names}, **dict(models[i].named_buffers())}
        results.append(finish_run(name, task_obj, models[i], data, mcfg, dcfg, tcfgs[i], {**st.best, "state": state},
                                  st.epochs_run, seconds, dev, out=outs[i] if outs else None, save_ckpt=save_ckpt,
                                  last=st.last, extra={"seed_batch": len(seeds)}))
    return results


def _evaluate_stack(task_obj, out: torch.Tensor, data, metric: str, train_loss: torch.Tensor,
                    nodes: dict[str, torch.Tensor]) -> list[dict]:
    """Per seed (row of ``out``, seeds x nodes x classes): whether its output is finite, its training
    loss (given), its validation loss and its score on each split, as
    :meth:`~fixpt.tasks.NodeClassification.loss` and ``score`` give them, computed for all rows at
    once and moved to the host in one transfer. ``nodes``: each split's node indices."""
    columns = {"finite": torch.isfinite(out).flatten(1).all(1).to(out.dtype), "train_loss": train_loss.to(out.dtype)}
    val = nodes["val"]
    columns["val_loss"] = torch.nn.functional.cross_entropy(
        out[:, val].transpose(1, 2), data.y[val].expand(out.shape[0], -1), reduction="none").mean(1)
    if metric == "accuracy":
        for split, idx in nodes.items():
            columns[f"{split}_accuracy"] = (out[:, idx].argmax(-1) == data.y[idx]).to(out.dtype).mean(1)
    host = torch.stack(list(columns.values())).cpu().tolist()
    rows = [{k: host[j][row] for j, k in enumerate(columns)} for row in range(out.shape[0])]
    for row, ev in enumerate(rows):
        ev["finite"] = bool(ev["finite"])
        if metric != "accuracy" and ev["finite"]:  # e.g. macro F1, which counts per class: one row at a time
            ev.update({f"{s}_{metric}": task_obj.score(out[row], data, s) for s in ("train", "val", "test")})
    return rows


def _shrink(params: dict, opt: torch.optim.Adam, keep: list[int], tcfg) -> tuple[dict, torch.optim.Adam]:
    """The stack and its Adam state restricted to the rows ``keep`` (the seeds still training)."""
    new_params = {n: p.detach()[keep].clone().requires_grad_(True) for n, p in params.items()}
    new_opt = torch.optim.Adam(new_params.values(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    for n, p in params.items():
        old = opt.state.get(p)
        if old:
            new_opt.state[new_params[n]] = {k: (v[keep].clone() if k != "step" else v.clone()) for k, v in old.items()}
    return new_params, new_opt
