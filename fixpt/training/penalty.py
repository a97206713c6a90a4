r"""``--jac-penalty``: the Frechet-derivative term of the training loss (paper, appendix A.2), for any model
solved by :func:`fixpt.solve`.

After a training step's forward pass, at a solution :math:`z^*` of the batch (held fixed), the loss gains

.. math::
    \lambda\, \mathrm{mean}_i\, \mathrm{relu}\big(\|J_P(z^*_i)\| - k\big)^2

with the norm from :mod:`fixpt.jacobian` (``spectral``: the operator norm by warm-started power iteration,
the paper's; ``frobenius``: the root-mean-square singular value, Hutchinson). :math:`J_P` is the derivative
of the operator as evaluation runs it (the model in eval mode: no dropout inside the step), which is the
operator ``fixpt check-contraction`` and ``fixpt iterate`` examine. :math:`z^*` is by default the training
pass's solution (``--jac-at train``, no extra work), which sits elsewhere than the evaluation solution when
dropout acts on the free term, with another ReLU pattern and so another J (a penalised Cora PIGN measured
0.85 there and 1.02 at the evaluation solution); ``--jac-at eval`` takes J at the evaluation-mode solve of
the batch instead, one more solve without a graph per step. On Cora (SAGE, degree norm, 400 epochs, one
seed) ``eval`` ended at 0.91 with 63.5 % test accuracy, ``train`` at 0.90 with 69.1 %: no gain for its cost
there, so it is not the default.

``metrics.json`` records the last penalty (``jac_penalty_last``), the last training estimate
(``jac_norm_last``) and, at the end of training, the local norm at the evaluation solution of the last
training batch by a converged power iteration (``jac_norm_end``, the same estimate as
``check-contraction``'s local norms). Every epoch's ``history.csv``
row has ``jac_norm`` and ``jac_penalty``, and model selection prefers epochs whose estimate is at or below
the target (:attr:`JacobianPenalty.feasible`; see :class:`~fixpt.training.parts.BestEpoch`).

``state_norm`` (``--state-norm``) picks the norm of the state in which :math:`\|J\|` is measured: ``l2``, or a
weighted norm :math:`\|S z\|_2` the model offers (``degree`` for graph models); the estimate is then of
:math:`S J S^{-1}` at :math:`S z^*` (:func:`fixpt.contraction.conjugate`), and ``fixpt check-contraction
--state-norm`` checks the same quantity. A contraction in any norm has a unique fixed point that Picard
iteration reaches (Banach), so the norm is free to choose; the degree norm lets mean aggregation keep its
neighbours' weight, which the Euclidean norm (where :math:`\|D^{-1}A\|_2` grows with hub degrees) does not.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..contraction import conjugate, lipschitz
from ..errors import FixptError
from ..jacobian import hinge_penalty, make_estimator
from ..models.base import IterativeModel, cached_weights, solved_by_fixpt
from ..solve import solve


class JacobianPenalty:
    """The penalty term of one training run, holding the power iteration's warm vector between steps."""

    def __init__(self, weight: float, norm: str, target: float, steps: int, seed: int, state_norm: str = "l2", at: str = "train"):
        self.weight, self.target, self.state_norm, self.at = weight, target, state_norm, at
        self.estimator = make_estimator(norm, torch.Generator().manual_seed(seed), steps)
        self.last_value = self.last_norm = float("nan")
        self._last_batch = None

    @classmethod
    def for_run(cls, tcfg, model, model_name: str) -> "JacobianPenalty | None":
        """The run's penalty (None when ``jac_penalty`` is 0); a one-line error for a model it cannot apply to."""
        if not tcfg.jac_penalty:
            return None
        if not solved_by_fixpt(model):
            raise FixptError(f"--jac-penalty needs a model solved by fixpt.solve (pign, vit, anie); {model_name} is not one")
        return cls(tcfg.jac_penalty, tcfg.jac_norm, tcfg.jac_target, tcfg.jac_steps, tcfg.seed, tcfg.state_norm, tcfg.jac_at)

    def _in_state_norm(self, model: IterativeModel, batch, P, z: Tensor):
        """The operator and the point in the coordinates of the state norm: :math:`(P_S, S z)`."""
        scale = model.state_scale(batch, self.state_norm)
        return conjugate(P, scale), (z if scale is None else scale * z)

    def _point(self, model: IterativeModel, f: Tensor, P) -> Tensor:
        """Where J is taken: the training pass's solution (``train``), or the evaluation-mode solve of the batch
        from its free term ``f`` (``eval``: the point ``check-contraction`` examines; one more solve, without a graph)."""
        if self.at == "train":
            return model.last_solution.z.detach()
        options = {**model.solver_options(), "grad": "unroll"}
        with torch.no_grad(), cached_weights(model):
            return solve(P, f, **options).z

    def _estimate(self, model: IterativeModel, batch) -> Tensor:
        was_training = model.training
        model.eval()  # the operator as evaluation runs it: no dropout inside the step
        try:
            f, P = model.operator(batch)
            P, z = self._in_state_norm(model, batch, P, self._point(model, f, P))
            return self.estimator(P, z, model.solver_options()["batched"])
        finally:
            model.train(was_training)

    def __call__(self, model: IterativeModel, batch) -> Tensor:
        """The penalty on ``batch``, whose training forward pass has just run (differentiable in the parameters)."""
        estimates = self._estimate(model, batch)
        value = hinge_penalty(estimates, self.weight, self.target)
        self.last_value, self.last_norm = float(value.detach()), float(estimates.detach().max())
        self._last_batch = batch
        return value

    def state_dict(self) -> dict:
        """The power vector and the random generator, so a resumed run draws and iterates exactly as an uninterrupted one."""
        est = self.estimator
        v = getattr(est, "v", None)  # the spectral estimator's power vector; Hutchinson keeps none
        return {"v": None if v is None else v.cpu(), "generator": est.generator.get_state(),
                "last_value": self.last_value, "last_norm": self.last_norm}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        est = self.estimator
        if state.get("v") is not None:
            est.v = state["v"].to(device)
        est.generator.set_state(state["generator"])
        self.last_value, self.last_norm = float(state["last_value"]), float(state["last_norm"])

    @property
    def feasible(self) -> bool:
        """Whether the last training estimate is at or below the target: model selection prefers such epochs, so
        the checkpoint is one the penalty has brought under its target whenever training reached one."""
        return self.last_norm <= self.target

    def epoch_record(self) -> dict:
        """The columns an epoch's ``history.csv`` row gains: the last estimate and penalty of the epoch."""
        return {"jac_norm": self.last_norm, "jac_penalty": self.last_value}

    def end_of_training(self, model: IterativeModel) -> dict:
        """What ``metrics.json`` records: the last penalty and estimate, and the converged local norm at the
        evaluation solution of the last training batch (``jac_norm_end``)."""
        out = {"jac_penalty_last": self.last_value, "jac_norm_last": self.last_norm, "jac_state_norm": self.state_norm}
        if self._last_batch is not None:
            model.eval()
            with torch.no_grad():
                model(self._last_batch)
            _, P = model.operator(self._last_batch)
            P, z = self._in_state_norm(model, self._last_batch, P, model.last_solution.z)
            norms = lipschitz(P, z, batched=model.solver_options()["batched"],
                              generator=torch.Generator().manual_seed(0))
            out["jac_norm_end"] = float(norms.max())
        return out
