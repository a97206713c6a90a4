"""The fixed-point model interface shared by every iterative model."""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..errors import DivergenceError, FixptError
from ..solve import Solution, solve


class IterativeModel(nn.Module):
    r"""A model :math:`x \mapsto \mathrm{decode}(z^*)` with :math:`z^* = P(z^*) = T(z^*) + f`,
    :math:`f = \mathrm{encode}(x)`, solved from :math:`z_0 = f` by :func:`fixpt.solve`.

    Subclasses define ``encode``, ``step`` and ``decode``, and ``solver_options`` returning the
    keyword arguments of :func:`fixpt.solve` (method, alpha, tol, max_iter, grad, batched, and
    ``frozen=self.seed_batched`` for a model that can be trained in seed batches).
    """

    last_solution: Solution | None = None
    seed_batched = False  # True while the model runs as a seed batch under vmap (see seed_batch_mode)
    warm_starts: dict | None = None  # with enable_warm_start: the last solution per (train/eval, shape)
    operator_evaluations = 0  # evaluations of P by every solve of this model (training and evaluation)

    def encode(self, batch) -> Tensor:
        raise NotImplementedError

    def step(self, z: Tensor, f: Tensor, batch) -> Tensor:
        raise NotImplementedError

    def decode(self, z: Tensor, batch) -> Tensor:
        raise NotImplementedError

    def solver_options(self) -> dict:
        raise NotImplementedError

    def run_statistics(self) -> dict:
        """What a run's metrics record of the last solve: iterations, convergence and the relative residual per iteration."""
        sol = self.last_solution
        if sol is None:
            return {}
        return dict(n_iter=sol.n_iter, converged=sol.converged, final_residual=float(sol.residual.max()) if sol.n_iter else None,
                    residual_trace=sol.rel_trace.max(dim=1).values.tolist())

    def certified_lipschitz(self, batch, norm: str = "l2") -> tuple[float | None, str]:
        """A proven upper bound on Lip(T) over the whole space in the state norm ``norm``, or (None, why not)."""
        return None, f"{type(self).__name__} has no certified bound"

    def state_scale(self, batch, norm: str) -> Tensor | None:
        r"""The positive diagonal :math:`S` of the state norm :math:`\|z\|_S = \|S z\|_2` named ``norm``
        (``--state-norm``), broadcastable against the state, or None for ``l2`` (:math:`S = I`); see
        :func:`fixpt.contraction.conjugate`. Graph models add ``degree``."""
        if norm == "l2":
            return None
        raise FixptError(f"--state-norm {norm}: {type(self).__name__} measures its state in l2 only (degree is a norm of graph "
                         "models' node states); use --state-norm l2")

    def operator(self, batch) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
        """The free term :math:`f` (also :math:`z_0`) and the operator :math:`P(z) = T(z) + f` for ``batch``."""
        f = self.encode(batch)
        return f, lambda z: self.step(z, f, batch)

    def enable_warm_start(self) -> None:
        """Start every solve from the previous solution of the same mode (training or evaluation) and shape,
        instead of from :math:`f` (``--warm-start``). The fixed point is the same; only the iterations to
        reach ``tol`` change, so it needs a solve that stops at a tolerance."""
        if not solved_by_fixpt(self):
            raise FixptError(f"--warm-start needs a model solved by fixpt.solve; {type(self).__name__} runs its own iteration")
        if self.solver_options()["tol"] <= 0:
            raise FixptError(f"--warm-start needs a solve that stops at a tolerance, but {type(self).__name__} runs a fixed number "
                             "of iterations (tol 0), which a warm start would change; set a tolerance (e.g. --tol 1e-4) or drop --warm-start")
        self.warm_starts = {}

    def solver_state(self) -> dict:
        """What a resumed run needs of the solves so far: the evaluation count and the warm starts (plain tensors)."""
        warm = [{"training": key[0], "z": z.cpu()} for key, z in (self.warm_starts or {}).items()]
        return {"operator_evaluations": int(self.operator_evaluations), "warm_starts": warm if self.warm_starts is not None else None}

    def load_solver_state(self, state: dict, device: torch.device) -> None:
        self.operator_evaluations = int(state.get("operator_evaluations", 0))
        if state.get("warm_starts") is not None and self.warm_starts is not None:
            moved = [(w["training"], w["z"].to(device)) for w in state["warm_starts"]]
            self.warm_starts = {(training, tuple(z.shape), z.device): z for training, z in moved}  # z.device: cuda:0, not cuda

    def _start(self, f: Tensor) -> tuple[Tensor, tuple | None]:
        """The first iterate (the warm start, else f) and the key its solution is kept under."""
        if self.warm_starts is None:
            return f, None
        key = (self.training, tuple(f.shape), f.device)
        z0 = self.warm_starts.get(key)
        return (f if z0 is None else z0), key

    def forward(self, batch) -> Tensor:
        f, P = self.operator(batch)
        options = self.solver_options()
        z0, key = self._start(f)
        with cached_weights(self):  # spectrally normalised weights: computed once per solve, not per step
            sol = solve(P, z0, **options)
        if options.get("frozen"):  # a seed batch under vmap: the solution holds batched tensors; keep none
            return self.decode(sol.z, batch)
        self.last_solution = sol
        self.operator_evaluations += sol.n_evals
        if key is not None and not sol.diverged:
            self.warm_starts[key] = sol.z.detach()
        if sol.diverged:
            raise DivergenceError(f"the fixed-point solve produced non-finite values at iteration {sol.n_iter}; "
                                  "raise alpha, lower the learning rate or use --contractive")
        return self.decode(sol.z, batch)


def solved_by_fixpt(model: nn.Module) -> bool:
    """Whether ``model``'s forward is one :func:`fixpt.solve` of its operator (:meth:`IterativeModel.forward`),
    which ``last_solution``, warm starts and the Jacobian penalty rely on; IterGNN runs its own iteration."""
    return isinstance(model, IterativeModel) and type(model).forward is IterativeModel.forward


@contextlib.contextmanager
def cached_weights(module: nn.Module):
    """Inside, every parametrised weight (e.g. spectral normalisation) is computed once, not at
    every operator evaluation. The cache is filled here with autograd on, so it keeps its graph
    even when the solver then runs under ``no_grad`` (``last`` and ``implicit`` modes)."""
    with parametrize.cached():
        with torch.enable_grad():
            for m in module.modules():
                if parametrize.is_parametrized(m):
                    for name in m.parametrizations:
                        getattr(m, name)
        yield


@contextlib.contextmanager
def seed_batch_mode(model: nn.Module):
    """Inside, ``model`` runs as one seed batch under ``torch.func.vmap`` (:mod:`fixpt.seed_batch`): every
    submodule with a ``seed_batched`` attribute has it set, so the solve is frozen instead of stopping
    (``solve(..., frozen=True)`` through ``solver_options``), nothing branches on tensor values, and
    shared input features become one wide product (:class:`~fixpt.models.dropout.InputLinear`).
    Seed batches need the fast kernels (their ``vmap`` rules)."""
    if any(getattr(m, "backend", "fast") == "reference" for m in model.modules()):
        raise FixptError("seed batches need the fast graph kernels, but this model was built with the reference ones "
                         "(FIXPT_KERNELS=reference, or the fast kernels failed their self-check); train its seeds one at a time")
    switched = [(m, m.__dict__.get("seed_batched")) for m in model.modules() if hasattr(m, "seed_batched")]
    for m, _ in switched:
        m.seed_batched = True
    try:
        yield model
    finally:
        for m, before in switched:
            if before is None:
                del m.seed_batched  # back to the class default
            else:
                m.seed_batched = before


