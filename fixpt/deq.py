r"""Wrap your own module as a fixed-point (deep equilibrium) layer: :class:`DEQ`.

Given a step :math:`T_\theta(z, u)` (any ``nn.Module`` called as ``step(z, u)``), an optional
encoder :math:`E` and decoder :math:`D`, the layer computes

.. math::
    u = E(x), \qquad z^* = T_\theta(z^*, u), \qquad y = D(z^*)

with :func:`fixpt.solve` on :math:`P(z) = T_\theta(z, u)` from :math:`z_0` = ``z_init(u)``
(default zeros), iterating the damped map :math:`G(z) = \alpha z + (1-\alpha) P(z)`. Gradients
follow ``grad`` (see :mod:`fixpt.solve`): ``implicit`` (the default) differentiates
:math:`z^* = T_\theta(z^*, u)` by the implicit-function theorem, with the adjoint
:math:`y = g + J_P(z^*)^\top y` solved as a fixed point too, so memory does not grow with the
iterations; ``last`` keeps only the final step :math:`z = T_\theta(z^*, u)` (the Jacobian-free
gradient); ``unroll`` backpropagates through every iteration.

:meth:`DEQ.contraction` measures the operator with :func:`fixpt.contraction`: :math:`\|J_P\|_2`
by power iteration at points along the trajectory, the spectral radius :math:`\rho(J_P(z^*))`, the
empirical pair ratio, and a certified bound where the step provides one (a method
``certified_lipschitz() -> (bound | None, reason)`` on the step, a proven
:math:`\sup_{z,u} \|\partial_z T(z, u)\|`), plus the Banach error bounds of the solve.

Example (``docs/examples/deq_wrapper.py`` trains one)::

    >>> import torch, fixpt
    >>> class Step(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.W = torch.nn.Parameter(0.5 * torch.eye(2))
    ...     def forward(self, z, u):
    ...         return z @ self.W.T + u        # T(z, u) = W z + u, so z* = (I - W)^{-1} u = 2 u
    >>> layer = fixpt.DEQ(Step(), tol=1e-8, max_iter=200)
    >>> layer(torch.ones(1, 2)).detach().round(decimals=4)
    tensor([[2., 2.]])
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from .contraction import ContractionReport, contraction
from .errors import DivergenceError, FixptError
from .solve import GRAD_MODES, METHODS, Solution, solve

SOLVER_KEYS = ("method", "alpha", "tol", "max_iter", "grad", "stop_mode", "window", "lam", "backward_tol", "backward_max_iter")


class DEQ(nn.Module):
    """A deep-equilibrium layer around ``step``: ``forward(x)`` returns ``decoder(z*)`` with ``z* = step(z*, encoder(x))``.

    Args:
        step: an ``nn.Module`` (or callable) ``step(z, u) -> z'`` of the same shape as ``z``.
        encoder: maps the input ``x`` to the injection ``u`` (default: identity, ``u = x``).
        decoder: maps ``z*`` to the output (default: identity).
        method, alpha, tol, max_iter, grad: as :func:`fixpt.solve`; here ``grad`` defaults to ``"implicit"``.
        batched: dim 0 of ``z`` indexes independent samples (residuals, stopping and norms per sample) (default: True).
        z_init: ``u -> z0`` (default: ``torch.zeros_like(u)``; give one when ``z`` and ``u`` differ in shape).
        **solver: further :func:`fixpt.solve` options (``stop_mode``, ``window``, ``lam``, ``backward_tol``, ``backward_max_iter``).

    Any solver option can also be given to :meth:`forward` for one call. After a call, ``last_solution``
    holds the :class:`~fixpt.solve.Solution` (iterations, convergence, residual traces).
    """

    def __init__(self, step: Callable[[Tensor, Tensor], Tensor], encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None, *, method: str = "picard", alpha: float = 0.5, tol: float = 1e-4,
                 max_iter: int = 50, grad: str = "implicit", batched: bool = True,
                 z_init: Callable[[Tensor], Tensor] | None = None, **solver):
        super().__init__()
        self.step = step
        self.encoder = encoder if encoder is not None else nn.Identity()
        self.decoder = decoder if decoder is not None else nn.Identity()
        self.batched, self.z_init = batched, z_init
        self.options = self._checked(dict(method=method, alpha=alpha, tol=tol, max_iter=max_iter, grad=grad, **solver))
        self.last_solution: Solution | None = None

    @staticmethod
    def _checked(options: dict) -> dict:
        """The solver options, each checked: a one-line error naming the valid values otherwise."""
        unknown = sorted(set(options) - set(SOLVER_KEYS))
        if unknown:
            raise FixptError(f"DEQ: unknown solver option(s) {', '.join(unknown)}; valid: {', '.join(SOLVER_KEYS)}")
        if options["method"] not in METHODS or options["grad"] not in GRAD_MODES:
            raise FixptError(f"DEQ: method must be one of {', '.join(METHODS)} and grad one of {', '.join(GRAD_MODES)}; "
                             f"got method={options['method']!r}, grad={options['grad']!r}")
        if not 0 <= options["alpha"] < 1 or options["max_iter"] < 1 or options["tol"] < 0:
            raise FixptError(f"DEQ: need 0 <= alpha < 1, max_iter >= 1 and tol >= 0; got alpha={options['alpha']}, "
                             f"max_iter={options['max_iter']}, tol={options['tol']}")
        return options

    def solver_options(self, **overrides) -> dict:
        """The keyword arguments of :func:`fixpt.solve` for one call: the constructor's, updated by ``overrides``."""
        return {**self._checked({**self.options, **overrides}), "batched": self.batched}

    def operator(self, x: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
        """The start :math:`z_0` and the operator :math:`P(z) = T(z, u)`, :math:`u = E(x)`."""
        u = self.encoder(x)
        z0 = torch.zeros_like(u) if self.z_init is None else self.z_init(u)

        def P(z: Tensor) -> Tensor:
            out = self.step(z, u)
            if out.shape != z.shape:
                raise FixptError(f"DEQ: step(z, u) returned shape {tuple(out.shape)} for z of shape {tuple(z.shape)}; "
                                 "a fixed-point step must keep the shape of z (give z_init when z and u differ)")
            return out

        return z0, P

    def equilibrium(self, x: Tensor, **overrides) -> Solution:
        """Solve for :math:`z^*` (not decoded); a non-finite iterate is a :class:`~fixpt.errors.DivergenceError`."""
        z0, P = self.operator(x)
        sol = solve(P, z0, **self.solver_options(**overrides))
        self.last_solution = sol
        if sol.diverged:
            raise DivergenceError(f"DEQ: the solve produced non-finite values at iteration {sol.n_iter}; the step is not a "
                                  "contraction there: raise alpha, or constrain the step (e.g. spectral normalisation)")
        return sol

    def forward(self, x: Tensor, **overrides) -> Tensor:
        """``decoder(z*)``; ``overrides`` change solver options for this call (e.g. ``max_iter=100``)."""
        return self.decoder(self.equilibrium(x, **overrides).z)

    def certified_lipschitz(self) -> tuple[float | None, str]:
        """The step's proven bound on :math:`\\|\\partial_z T\\|`, when it has a ``certified_lipschitz()`` method."""
        bound = getattr(self.step, "certified_lipschitz", None)
        if bound is None:
            return None, f"the step ({type(self.step).__name__}) provides no certified bound; empirical estimates only"
        return bound()

    def contraction(self, x: Tensor, *, points: int = 5, threshold: float = 1.0, iters: int = 100, seed: int = 0,
                    **overrides) -> ContractionReport:
        """Contraction estimates of :math:`P(z) = T(z, E(x))` at ``points`` iterates spread over the solve
        from :math:`z_0` to the last (its verdict, ``as_dict()`` and Banach bounds: :class:`~fixpt.contraction.ContractionReport`)."""
        options = {**self.solver_options(**overrides), "grad": "unroll"}
        with torch.no_grad():
            z0, P = self.operator(x)
            iterates = [z0]
            sol = solve(P, z0, callback=lambda k, z: iterates.append(z), **options)
        if sol.diverged:
            raise DivergenceError(f"DEQ: the solve diverged at iteration {sol.n_iter}, so no Jacobian norm can be measured there")
        picks = torch.linspace(0, len(iterates) - 1, min(max(points, 1), len(iterates))).round().long().unique()
        report = contraction(P, [iterates[i] for i in picks.tolist()], batched=self.batched, certified=self.certified_lipschitz(),
                             threshold=threshold, alpha=options["alpha"], iters=iters, seed=seed)
        if sol.n_iter:
            report.add_banach_bounds(sol.n_iter, float(sol.abs_trace[0].max()), float(sol.abs_trace[-1].max()))
        return report
