r"""What one training step costs, for curves of test error against training compute (``fixpt report --plot``).

:func:`train_step_cost` counts the floating-point operations of one training step, the task's loss forward
and its backward, with :class:`torch.utils.flop_counter.FlopCounterMode` on a copy of the model and one
training batch, once at the start of training; ``metrics.json`` records it as ``train_flops_per_step``
beside ``train_steps_per_epoch``, so that epoch :math:`e` of ``history.csv`` sits at
:math:`e \cdot \text{steps} \cdot \text{flops}` training FLOPs.

It is an estimate from one step: FlopCounterMode counts the operators it has formulas for (matrix
products, convolutions, attention), not elementwise work or optimiser updates; a solve that stops at a
tolerance costs what its first step cost, not what later steps cost; a Jacobian penalty's extra passes are
not counted. The count runs under a forked random state, on a copy, so the run itself is unchanged.
"""

from __future__ import annotations

import copy
import math

import torch


def train_step_cost(model, task, data, index, batch_size: int, cast) -> dict:
    """``{"train_flops_per_step": F, "train_steps_per_epoch": S}`` for a run training on ``index`` (None:
    full batch) in batches of ``batch_size``; ``{"train_flops_error": why}`` when counting fails."""
    from torch.utils.flop_counter import FlopCounterMode

    steps = 1 if index is None else math.ceil(len(index) / batch_size)
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        batch = data if index is None else data.subset(index[:batch_size])
        clone = copy.deepcopy(model).train()
        counter = FlopCounterMode(display=False)
        try:
            with counter, cast():
                task.loss(clone(batch), batch, "train").backward()
        except (RuntimeError, NotImplementedError, TypeError) as e:  # an estimate must never stop a run
            return {"train_flops_error": f"{type(e).__name__}: {e}"[:300], "train_steps_per_epoch": steps}
    return {"train_flops_per_step": int(counter.get_total_flops()), "train_steps_per_epoch": steps}
