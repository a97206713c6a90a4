"""Small parts of every training loop: seeding, autocast and the best-epoch tracker with patience."""

from __future__ import annotations

import contextlib
import math
import random

import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def autocast(device: torch.device, enabled: bool):
    """A context factory: bf16 autocast on CUDA when ``enabled``, else nothing."""
    if enabled and device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class BestEpoch:
    """Model selection on validation only, with patience.

    An epoch's evaluation ``ev`` (``val_<metric>``, ``val_loss``, ...) is better than the best so far when
    :math:`(s \\cdot \\mathrm{val\\_score}, -\\mathrm{val\\_loss})` is larger (lexicographically), with
    :math:`s = 1` for a score where higher is better and :math:`-1` otherwise: ties of the score go to the
    lower validation loss. ``exhausted`` after ``patience`` epochs in a row without a better one. ``last``
    is the evaluation after the last epoch seen (the last-epoch protocol)."""

    def __init__(self, metric: str, higher_is_better: bool, patience: int):
        self.metric, self.sign, self.patience = metric, 1.0 if higher_is_better else -1.0, patience
        self.best: dict = {"key": (False, -math.inf, -math.inf)}
        self.last: dict = {}
        self.since_best = 0
        self.epochs_run = 0

    def update(self, epoch: int, ev: dict, feasible: bool = True, **keep) -> bool:
        """Record epoch ``epoch``'s evaluation; True if it is the best so far (then ``keep``, e.g. the weights,
        is stored beside it in ``best``). An epoch that is not ``feasible`` (it breaks a constraint the run
        declared, e.g. ``--jac-target``) is chosen only while no feasible one has been seen."""
        self.epochs_run, self.last = epoch, ev
        key = (bool(feasible), self.sign * ev[f"val_{self.metric}"], -ev["val_loss"])
        if key > self.best["key"]:
            self.best = {"key": key, "epoch": epoch, **ev, **keep}
            self.since_best = 0
            return True
        self.since_best += 1
        return False

    @property
    def exhausted(self) -> bool:
        """``patience`` epochs without a better one, counted once a feasible epoch exists: while every epoch
        breaks the run's constraint, training goes on to its last epoch."""
        return self.best["key"][0] and self.since_best >= self.patience
