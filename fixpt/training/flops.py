r"""What one training step costs, for curves of test error against training compute (``fixpt report --plot``).

:func:`train_step_cost` counts the floating-point operations of one training step, the task's loss forward
and its backward, with :class:`torch.utils.flop_counter.FlopCounterMode` on a copy of the model and one
training batch, once at the start of training; ``metrics.json`` records it as ``train_flops_per_step``
beside ``train_steps_per_epoch``, so that epoch :math:`e` of ``history.csv`` sits at
:math:`e \cdot \text{steps} \cdot \text{flops}` training FLOPs.

It is an estimate from one step: FlopCounterMode counts the operators it has formulas for (matrix
products, convolutions, attention), not elementwise work or optimiser updates; a solve that stops at a
tolerance costs what its first step cost, not what later steps cost. A Jacobian penalty (``--jac-penalty``) is
counted with the step: its power iteration's products and their backward, run on a copy of the penalty. The
count runs under a forked random state, on copies, so the run itself is unchanged.
"""

from __future__ import annotations

import copy
import math

import torch


def _flop_counter(penalty):
    """FlopCounterMode; with a penalty, without its per-module tracker, whose backward hooks fail inside the
    penalty's ``torch.autograd.grad`` calls (torch 2.14: "A leaf node was passed to _will_engine_execute_node");
    every count then goes to the global total, the only one read here."""
    from torch.utils.flop_counter import FlopCounterMode, _FlopCounterMode

    if penalty is None:
        return FlopCounterMode(display=False)

    class GlobalFlopCounter(FlopCounterMode):
        def __enter__(self):
            self.flop_counts.clear()
            self.mode = _FlopCounterMode(self)
            self.mode.__enter__()
            return self

        def __exit__(self, *args):
            done, self.mode = self.mode.__exit__(*args), None
            return done

    return GlobalFlopCounter(display=False)


def train_step_cost(model, task, data, index, batch_size: int, cast, penalty=None) -> dict:
    """``{"train_flops_per_step": F, "train_steps_per_epoch": S}`` for a run training on ``index`` (None:
    full batch) in batches of ``batch_size``, with ``penalty`` (a :class:`~fixpt.training.penalty.JacobianPenalty`
    or None) in the loss; ``{"train_flops_error": why}`` when counting fails."""
    steps = 1 if index is None else math.ceil(len(index) / batch_size)
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        batch = data if index is None else data.subset(index[:batch_size])
        clone, penalty = copy.deepcopy(model).train(), copy.deepcopy(penalty)
        try:
            counter = _flop_counter(penalty)
            with counter, cast():
                loss = task.loss(clone(batch), batch, "train")
                (loss if penalty is None else loss + penalty(clone, batch)).backward()
        except (RuntimeError, NotImplementedError, TypeError, ImportError, AttributeError) as e:  # an estimate must never stop a run
            return {"train_flops_error": f"{type(e).__name__}: {e}"[:300], "train_steps_per_epoch": steps}
    return {"train_flops_per_step": int(counter.get_total_flops()), "train_steps_per_epoch": steps}
