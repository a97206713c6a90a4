r"""The training run's Adam, with ``--op-lr-scale``: the iterated operator's parameters at their own step.

The parameters of the operator :math:`P(z) = T(z) [+ f]` (the iterated block: PIGN's GNN block, the ViT's
transformer in token mode, ANIE's integral operator) are found by differentiating one application of
:math:`P` at its free term with :math:`f` held fixed, so no model has to declare them:

.. math::
    \Theta_P = \{\theta : \partial P(f)/\partial\theta \text{ is in the autograd graph}\}

(in pixel mode the ViT's step re-encodes the image, so every weight is an operator weight). Those
parameters step at ``lr * op_lr_scale``, all others at ``lr``.

Why a separate step: the Jacobian penalty (``--jac-penalty``) holds :math:`\|J_P\| \le k` with
:math:`k < 1`, so the operator's weights live at contraction scale (a 64-wide SAGE block's two weights at
spectral norms 0.6-0.8). Adam moves every coordinate by about ``lr`` a step, whatever its gradient's size:
a step of 0.01 with a coherent sign pattern on a 64 x 64 matrix can change its spectral norm by up to
0.01 * 64 = 0.64, more than the slack :math:`1 - k` the penalty defends. On Cora (default SAGE PIGN, degree
norm, target 0.9, 5 seeds) a scale of 0.1 lifts the penalised model from 68.1 % to 75.9 % test accuracy
(unpenalised: 78.1 %), on csbm from 44.2 % to 52.5 % (unpenalised: 77.2 %); see docs/results.md.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..errors import FixptError
from ..models.base import solved_by_fixpt


def operator_parameters(model: nn.Module, batch) -> list[nn.Parameter]:
    """The trainable parameters that one application of the model's operator :math:`P` (its
    :meth:`~fixpt.models.base.IterativeModel.operator`, as the penalty and ``check-contraction`` take it) to
    its free term reads: the free term is computed without a graph, so the encoder's weights are not reached;
    the model is in evaluation mode, so no dropout decides what is read."""
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            f, P = model.operator(batch)
        with torch.enable_grad():
            grads = torch.autograd.grad(P(f).float().sum(), params, allow_unused=True)
    finally:
        model.train(was_training)
    return [p for p, g in zip(params, grads) if g is not None]


def make_optimizer(model: nn.Module, tcfg, first_batch: Callable[[], object], model_name: str) -> torch.optim.Adam:
    """Adam over the model's parameters; with ``op_lr_scale != 1`` two groups, the operator's at
    ``lr * op_lr_scale`` first, the rest at ``lr`` (one group otherwise, as a resumed older run expects).
    ``first_batch`` gives a training batch to find the operator's parameters on; it is called only then, so a
    run at scale 1 draws no random number here."""
    scale = tcfg.op_lr_scale
    if scale == 1:
        return torch.optim.Adam(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    if not solved_by_fixpt(model):
        raise FixptError(f"--op-lr-scale needs a model solved by fixpt.solve (pign, vit, anie); {model_name} has no "
                         "operator to single out; leave it at 1")
    operator = operator_parameters(model, first_batch())
    if not operator:
        raise FixptError(f"--op-lr-scale: {model_name}'s operator reads no trainable parameter; leave it at 1")
    chosen = {id(p) for p in operator}
    rest = [p for p in model.parameters() if id(p) not in chosen]
    groups = [{"params": operator, "lr": tcfg.lr * scale}] + ([{"params": rest}] if rest else [])
    return torch.optim.Adam(groups, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
