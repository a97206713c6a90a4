"""The epoch loop: full-batch (or minibatch) Adam, model selection on validation only, and the end of a
run (best weights reloaded, ``ckpt.pt`` then ``metrics.json`` written). Seed batches
(:mod:`fixpt.seed_batch`) reuse :func:`evaluate`'s keys, :class:`~fixpt.training.parts.BestEpoch` and
:func:`finish_run`, so both write the same metrics."""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import from_dict, to_dict
from ..device import resolve_device
from ..errors import DivergenceError, FixptError
from ..models.base import IterativeModel
from ..tracking import RunLog, flatten
from .build import build_model
from .flops import train_step_cost
from .parts import BestEpoch, autocast, count_parameters, seed_everything
from .optimizer import make_optimizer
from .penalty import JacobianPenalty
from .resume import EPOCH_FORMAT, read_state, restore_epoch_state, resumed_configs, save_epoch_state
from .rundir import CKPT, RunDir

SPLITS = ("train", "val", "test")


def evaluate(model, task, data, metric, splits: tuple[str, ...] = SPLITS) -> dict:
    """``val_loss`` and ``{split}_{metric}`` for each of ``splits``, in evaluation mode without gradients."""
    model.eval()
    with torch.no_grad():
        out = model(data)
        return {"val_loss": float(task.loss(out, data, "val")), **{f"{s}_{metric.name}": task.score(out, data, s, metric) for s in splits}}


def held_out(data, index):
    """What each epoch evaluates: the whole data of a full-batch task (one forward gives every split), and only
    the validation and test samples of a minibatched one, whose training split (most of the data) the epoch's
    ``train_loss`` already follows; its training score is taken once, at the best epoch's weights (:func:`finish_run`)."""
    if index is None:
        return data, SPLITS
    return data.subset((data.val_mask | data.test_mask).nonzero().flatten()), ("val", "test")


def _batches(data, index, batch_size: int) -> list:
    if index is None:
        return [data]
    order = index[torch.randperm(len(index), device=index.device)]
    return [data.subset(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]


def _train_epoch(model, task, batches, opt, cast, epoch: int, penalty: JacobianPenalty | None = None) -> float:
    """One epoch of Adam steps; the loss is the task's plus, with ``--jac-penalty``, the Jacobian term."""
    model.train()
    losses = []
    for batch in batches:
        opt.zero_grad(set_to_none=True)
        with cast():
            loss = task.loss(model(batch), batch, "train")
            if penalty is not None:
                loss = loss + penalty(model, batch)
        if not torch.isfinite(loss):
            raise DivergenceError(f"training loss became {float(loss)} at epoch {epoch}; lower --lr, raise --alpha or use --contractive")
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)


def _solver_extras(model, model_name: str, tcfg) -> JacobianPenalty | None:
    """Switch on ``--warm-start`` and build the ``--jac-penalty`` term (None when off), each refused with one line
    for a model it cannot apply to."""
    if tcfg.warm_start:
        if not isinstance(model, IterativeModel):
            raise FixptError(f"--warm-start needs a model solved by fixpt.solve; {model_name} has no fixed-point solve")
        model.enable_warm_start()
    return JacobianPenalty.for_run(tcfg, model, model_name)


def _solver_state(model, penalty: JacobianPenalty | None) -> dict:
    """The solves' state a resumed run needs (see :func:`~fixpt.training.resume.save_epoch_state`)."""
    state = model.solver_state() if isinstance(model, IterativeModel) else {}
    return {**state, "penalty": penalty.state_dict()} if penalty is not None else state


def _load_solver_state(model, penalty: JacobianPenalty | None, state: dict, device) -> None:
    if isinstance(model, IterativeModel):
        model.load_solver_state(state, device)
    if penalty is not None and state.get("penalty"):
        penalty.load_state_dict(state["penalty"], device)


def solver_work(model, epochs: int) -> dict:
    """How much solving a run's epochs took: operator evaluations in all (training and evaluation passes) and per epoch."""
    total = model.operator_evaluations if isinstance(model, IterativeModel) else 0
    return {"operator_evaluations": total, "operator_evaluations_per_epoch": total / max(epochs, 1)} if total else {}


def fit_epochs(spec, task, request) -> dict:
    """Train one run; write ``ckpt.pt`` (unless ``request.save_ckpt`` is False) and then ``metrics.json`` into
    ``request.out`` (each atomically, metrics last: a run with ``metrics.json`` is complete); return the metrics.
    Every epoch appends a row to ``history.csv`` and goes to the tracker (``request.tracker``); every
    ``ckpt_every`` epochs the resumable ``train_state.pt`` is written (:mod:`fixpt.training.resume`), and
    ``resume`` continues a killed run from it, exactly as the uninterrupted run would have gone on.

    The reported test score is the one at the epoch of best validation score (:class:`BestEpoch`); the test
    split never chooses anything."""
    state, request = _resumed(spec, task, request)
    dev = resolve_device(request.device)
    tcfg = from_dict(task.train_config, request.train, what="train config")
    folder = RunDir(request.out)
    log = RunLog.open(folder, request.tracker, spec.name)  # a missing tracker library fails here, before any work
    seed_everything(tcfg.seed)
    model, data, mcfg, dcfg = build_model(spec, task, request.model_config, request.data, dev, tcfg.param_budget)
    metric = task.metric_for(dcfg)
    if tcfg.batch_size and not task.minibatches:
        raise FixptError(f"batch_size applies to tasks with independent samples; {task.name} trains on one whole graph (use 0)")
    index = data.train_mask.nonzero().flatten() if tcfg.batch_size else None
    opt = make_optimizer(model, tcfg, lambda: data if index is None else data.subset(index[:tcfg.batch_size]), spec.name)
    penalty = _solver_extras(model, spec.name, tcfg)
    evaluated, splits = held_out(data, index)
    cast = autocast(dev, tcfg.use_amp)
    tracker = BestEpoch(metric.name, metric.higher_is_better, tcfg.patience)
    configs = _state_configs(spec, task, request, dcfg, tcfg)
    first, before = restore_epoch_state(state, model, opt, tracker) if state else (1, 0.0)
    if state:
        _load_solver_state(model, penalty, state.get("solver", {}), dev)
    # FLOPs of one step at the start of training, for --plot's curves (a resumed run keeps its first count)
    cost = state.get("solver", {}).get("step_cost") if state else None
    cost = cost or train_step_cost(model, task, data, index, tcfg.batch_size, cast, penalty)
    start = time.perf_counter()
    with log:
        log.start(flatten({k: configs[k] for k in ("model", "data", "train")}), {"model": spec.name, "task": task.name},
                  *((state["history"], state["tracker"]) if state else ()))
        for epoch in range(first, tcfg.epochs + 1):
            if tracker.exhausted:
                break
            train_loss = _train_epoch(model, task, _batches(data, index, tcfg.batch_size), opt, cast, epoch, penalty)
            ev = {"train_loss": train_loss, **(penalty.epoch_record() if penalty else {}), **evaluate(model, task, evaluated, metric, splits)}
            _check_validation(ev, metric.name, epoch)
            log.row(epoch, ev)
            if tracker.update(epoch, ev, feasible=penalty is None or penalty.feasible):
                tracker.best["state"] = copy.deepcopy(model.state_dict())
            if epoch % tcfg.ckpt_every == 0:
                save_epoch_state(folder, configs, epoch, model, opt, tracker, log, before + time.perf_counter() - start,
                                 {**_solver_state(model, penalty), "step_cost": cost})
            if request.on_epoch is not None:
                request.on_epoch(epoch, ev)
        run = Finished(spec.name, task, model, data, metric, (mcfg, dcfg, tcfg), dev, before + time.perf_counter() - start,
                       extra={**solver_work(model, tracker.epochs_run), **cost}, penalty=penalty)
        metrics = finish_run(run, tracker, folder, save_ckpt=request.save_ckpt)
        log.finish(metrics, folder / CKPT if request.save_ckpt and folder.path is not None else None)
    folder.remove_state()  # the run is complete: nothing to resume
    return metrics


def _resumed(spec, task, request):
    """(the saved state, the request with the stored configs) for a request with ``resume``; (None, request) otherwise."""
    where = request.train.get("resume", "")
    if not where:
        return None, request
    state = read_state(where, EPOCH_FORMAT, f"fixpt train {spec.name}")
    if (state["model_name"], state["task"]) != (spec.name, task.name):
        raise FixptError(f"--resume {where}: the run there trains {state['model_name']} on task {state['task']}; resume it "
                         f"with `fixpt train {state['model_name']} --task {state['task']} --resume {where}`")
    defaults = {"model": spec.config(), "data": task.data_config(), "train": task.train_config()}
    given = {"model": request.model_config, "data": request.data, "train": request.train}
    cfgs = resumed_configs(state, {k: (given[k], to_dict(defaults[k])) for k in given}, "epochs")
    return state, dataclasses.replace(request, model_config=cfgs["model"], data=cfgs["data"], train=cfgs["train"],
                                      out=request.out or Path(where))


def _state_configs(spec, task, request, dcfg, tcfg) -> dict:
    """What a saved state records of the run: its model and task and the three configs as asked for (the
    model's before ``param_budget`` fits its width, which a resumed run fits again)."""
    mcfg = from_dict(spec.config, request.model_config, what=f"{spec.name} config")
    return {"model_name": spec.name, "task": task.name, "model": to_dict(mcfg), "data": to_dict(dcfg), "train": to_dict(tcfg)}


def _check_validation(ev: dict, metric: str, epoch: int) -> None:
    """Model selection needs a validation score: NaN means an empty validation split (or a diverged evaluation)."""
    if math.isnan(ev[f"val_{metric}"]) or math.isnan(ev["val_loss"]):
        raise FixptError(f"val_{metric} is NaN at epoch {epoch}: the validation split is empty (e.g. a generated graph with "
                         "too few nodes for its split) or the evaluation diverged; use more data or lower --lr")


@dataclass
class Finished:
    """A run whose training is over: what :func:`finish_run` needs besides its tracker."""

    model_name: str
    task: object
    model: torch.nn.Module
    data: object
    metric: object
    configs: tuple  # (model, data, train) configs
    device: torch.device
    seconds: float
    extra: dict | None = None
    penalty: JacobianPenalty | None = None


def finish_run(run: Finished, tracker: BestEpoch, folder: RunDir, *, save_ckpt: bool) -> dict:
    """Load the best epoch's weights, evaluate once more (the final solve's statistics), write ``ckpt.pt``
    (unless ``save_ckpt`` is False) and then ``metrics.json``, and return the metrics.

    Two protocols are recorded: ``test_<metric>`` at the epoch of best validation score (fixpt's
    selection; the checkpoint holds that epoch's weights) and ``test_<metric>_last_epoch`` (with
    ``val_<metric>_last_epoch``) from the evaluation after the last epoch run: the paper's protocol,
    which reports the model as training leaves it."""
    best, last, m = tracker.best, tracker.last, run.metric.name
    mcfg, dcfg, tcfg = run.configs
    run.model.load_state_dict(best["state"])
    penalty_end = run.penalty.end_of_training(run.model) if run.penalty is not None else {}
    final = evaluate(run.model, run.task, run.data, run.metric)  # leaves the final (eval-mode) solve in the model
    metrics = {
        "model": run.model_name, "task": run.task.name,
        f"val_{m}": best[f"val_{m}"], f"test_{m}": best[f"test_{m}"], f"train_{m}": best.get(f"train_{m}", final[f"train_{m}"]),
        "val_loss": best["val_loss"],
        f"test_{m}_last_epoch": last[f"test_{m}"], f"val_{m}_last_epoch": last[f"val_{m}"],
        "best_epoch": best["epoch"], "epochs_run": tracker.epochs_run, "seconds": run.seconds,
        "parameters": count_parameters(run.model), "hidden": to_dict(mcfg).get("hidden"), "device": str(run.device),
        **(run.extra or {}), **penalty_end,
    }
    metrics.update(run.model.run_statistics())
    metrics.update(run.task.test_batch_spread(run.model, run.data, run.metric, tcfg.batch_size))  # after the statistics: its solves are per batch
    references = run.task.reference_scores(run.data, run.metric)
    if references:
        metrics["references"] = references
    if save_ckpt:
        folder.write_checkpoint(model=run.model_name, config=to_dict(mcfg), data=to_dict(dcfg), state_dict=best["state"],
                                train=to_dict(tcfg), metrics=metrics, task=run.task.name)
    folder.write_metrics(metrics)
    return metrics
