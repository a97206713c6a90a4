r"""Fixed-point solvers for :math:`z = P(z)`, with :math:`P(z) = T(z) + f`.

Both solvers iterate the *damped* map of the paper's Algorithms 1 and 2,

.. math::
    G(z) = \alpha z + (1 - \alpha) P(z),

which has the same fixed points as :math:`P` and, if :math:`P` is a contraction with factor
:math:`k`, is one with factor :math:`\alpha + (1 - \alpha) k`.

* ``picard``: :math:`z_{k+1} = G(z_k)` (Alg. 1, line 5).
* ``anderson``: Anderson acceleration (type II) of :math:`G`: the next iterate is the
  combination :math:`\sum_i c_i G(z_i)` of the last ``window`` images whose residuals
  :math:`\sum_i c_i (G(z_i) - z_i)` have the least norm, subject to :math:`\sum_i c_i = 1`
  (Walker & Ni, 2011). ``lam`` regularises the small least-squares system, relative to the mean
  squared residual norm in the window, so it does not take over as the residuals shrink.
* ``broyden``: Broyden's "good" method on the residual :math:`F(z) = G(z) - z`: the step
  :math:`z_{k+1} = z_k - H_k F(z_k)` with :math:`H_k \approx J_F(z_k)^{-1}`, from :math:`H_0 = -I`
  (the first step is the Picard step) and updated so that :math:`H_{k+1} y_k = s_k`, with
  :math:`s_k = z_{k+1} - z_k`, :math:`y_k = F(z_{k+1}) - F(z_k)`:
  :math:`H_{k+1} = H_k + (s_k - H_k y_k)\, s_k^\top H_k / (s_k^\top H_k y_k)` (Sherman-Morrison form).
  :math:`H` is kept as :math:`-I` plus at most ``window`` rank-one terms, per sample, and restarts
  from :math:`-I` when they are used up; an update whose denominator vanishes is skipped. On a linear map with full memory it terminates in at
  most :math:`2n` steps (Gay, 1979).

Residuals. At each iteration the residual is :math:`r_k = \|G(z_k) - z_k\|_2` (for Picard this is
:math:`\|z_{k+1} - z_k\|_2`), per sample of the batch: ``abs_trace`` holds :math:`r_k`,
``rel_trace`` the size-normalised :math:`r_k / \|G(z_k)\|_2`. The solve stops as Algorithm 1 does,
when every sample's residual is ``<= tol`` (relative by default, ``stop_mode="abs"`` for the
absolute one) or after ``max_iter`` iterations. A non-finite iterate stops the solve at once:
``Solution.diverged`` is set and ``z`` is the last finite iterate.

Gradients (``grad=``):

* ``unroll``: backpropagate through every iteration (how the paper trains).
* ``last``: iterate without autograd, then one undamped step :math:`z = P(z^*)` with it
  (the Jacobian-free / one-step gradient: memory flat in the number of iterations).
* ``implicit``: the implicit-function theorem. From :math:`z^* = P(z^*, \theta)`,
  :math:`\partial L/\partial\theta = y^\top \partial P/\partial\theta` with the adjoint
  :math:`y = g + J_P(z^*)^\top y`, :math:`g = \partial L/\partial z^*`, which is itself a
  fixed-point problem and is solved by this same :func:`solve`.

Frozen solves (``frozen=True``). ``torch.func.vmap`` (seed-batched training, :mod:`fixpt.seed_batch`)
allows no data-dependent branch, so no stop: Picard runs all ``max_iter`` iterations, and a sample
whose residual has reached ``tol`` is frozen at that iterate by ``torch.where``, which is exactly
the iterate the stopping solve returns. Non-finite values are not caught (the caller checks its
loss), and the returned :class:`Solution` has no traces. Models ask for it through
``solver_options()`` (``frozen=self.seed_batched``, see :func:`fixpt.models.base.seed_batch_mode`).

Example::

    >>> import torch, fixpt
    >>> sol = fixpt.solve(torch.cos, torch.zeros(1, 1), tol=1e-6, max_iter=100)
    >>> round(sol.z.item(), 4), sol.converged
    (0.7391, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
from torch import Tensor

from .errors import FixptError

Method = Literal["picard", "anderson", "broyden"]
GradMode = Literal["unroll", "last", "implicit"]
StopMode = Literal["rel", "abs"]
METHODS = ("picard", "anderson", "broyden")
GRAD_MODES = ("unroll", "last", "implicit")
STOP_MODES = ("rel", "abs")

Operator = Callable[[Tensor], Tensor]
Callback = Callable[[int, Tensor], None]


@dataclass
class Solution:
    """The result of :func:`solve`.

    Attributes:
        z: the final iterate, same shape as ``z0``.
        n_iter: iterations run (operator evaluations in the loop).
        converged: True when every sample's residual reached ``tol``.
        abs_trace: ``(n_iter, B)`` absolute residuals :math:`\\|G(z_k) - z_k\\|_2` per sample.
        rel_trace: ``(n_iter, B)`` relative residuals, divided by :math:`\\|G(z_k)\\|_2`.
        diverged: True when a non-finite value stopped the solve.
        n_evals: number of evaluations of ``P`` (backward-pass solves not included).
    """

    z: Tensor
    n_iter: int
    converged: bool
    abs_trace: Tensor
    rel_trace: Tensor
    diverged: bool = False
    n_evals: int = 0
    method: str = "picard"
    info: dict = field(default_factory=dict)

    @property
    def residual(self) -> Tensor:
        """The last relative residual per sample (``inf`` when no iteration ran)."""
        if self.n_iter == 0:
            return torch.full((self.abs_trace.shape[1],), float("inf"))
        return self.rel_trace[-1]


def _sample_norms(x: Tensor, batched: bool) -> Tensor:
    """Euclidean norm per sample: over all dims but the first when batched, else one norm."""
    flat = x.reshape(x.shape[0], -1) if batched else x.reshape(1, -1)
    return torch.linalg.vector_norm(flat, dim=1, dtype=torch.promote_types(flat.dtype, torch.float32))


def _check(method: str, grad: str, stop_mode: str, alpha: float, max_iter: int) -> None:
    for value, valid, name in ((method, METHODS, "method"), (grad, GRAD_MODES, "grad"), (stop_mode, STOP_MODES, "stop_mode")):
        if value not in valid:
            raise FixptError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
    if not 0.0 <= alpha < 1.0:
        raise FixptError(f"alpha={alpha} is outside [0, 1); alpha is the weight kept on z_k")
    if max_iter < 0:
        raise FixptError(f"max_iter={max_iter} must be >= 0")


class _Tracker:
    """Records per-sample residuals and decides when to stop (Alg. 1, line 3)."""

    def __init__(self, tol: float, stop_mode: str, batched: bool):
        self.tol, self.stop_mode, self.batched = tol, stop_mode, batched
        self.abs: list[Tensor] = []
        self.rel: list[Tensor] = []

    def update(self, z: Tensor, gz: Tensor) -> tuple[bool, bool]:
        """Record ``||G(z) - z||``; return (finite, converged)."""
        with torch.no_grad():
            abs_r = _sample_norms(gz - z, self.batched)
            size = _sample_norms(gz, self.batched)
            rel_r = abs_r / size.clamp_min(1e-12)
            crit = rel_r if self.stop_mode == "rel" else abs_r
            # a non-finite norm means a non-finite (or overflowing) entry: no separate pass over gz
            finite, converged = torch.stack([torch.isfinite(size).all(), (crit <= self.tol).all()]).tolist()  # one sync
            if not finite:
                return False, False
            self.abs.append(abs_r)
            self.rel.append(rel_r)
            return True, converged

    def traces(self, batch: int) -> tuple[Tensor, Tensor]:
        if not self.abs:
            empty = torch.zeros(0, batch)
            return empty, empty.clone()
        return torch.stack(self.abs).cpu(), torch.stack(self.rel).cpu()


def _picard(P: Operator, z: Tensor, alpha: float, max_iter: int, tracker: _Tracker, callback: Callback | None) -> tuple[Tensor, int, bool, bool]:
    converged = finite = True
    k = 0
    for k in range(1, max_iter + 1):
        # 1. damped Picard step (Alg. 1, line 5): z_{k+1} = a z_k + (1 - a) P(z_k)
        z_next = alpha * z + (1.0 - alpha) * P(z) if alpha > 0 else P(z)
        # 2. residual ||z_{k+1} - z_k|| and stopping test (Alg. 1, line 3)
        finite, converged = tracker.update(z, z_next)
        if not finite:
            return z, k, False, True
        z = z_next
        if callback is not None:
            callback(k, z)
        if converged:
            break
    return z, k, converged, False


def _damped_rows(P: Operator, z0: Tensor, alpha: float, batched: bool) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """The damped map on flattened samples, ``G: (B, n) -> (B, n)``, and ``z0`` as such rows."""
    shape = z0.shape
    B = shape[0] if batched else 1

    def G(x: Tensor) -> Tensor:
        Px = P(x.reshape(shape)).reshape(B, -1)
        return alpha * x + (1.0 - alpha) * Px if alpha > 0 else Px

    return G, z0.reshape(B, -1)


def _step_head(tracker: _Tracker, x: Tensor, gx: Tensor, k: int, callback: Callback | None, shape) -> tuple | None:
    """Record the residual ``||G(x_k) - x_k||`` of an accelerated solver's iterate; the solver's result when it
    ends here (non-finite: the last finite iterate; converged: the image ``G(x_k)``), else None."""
    finite, converged = tracker.update(x, gx)
    if not finite:
        return x.reshape(shape), k, False, True
    if callback is not None:
        callback(k, gx.reshape(shape))
    if converged:
        return gx.reshape(shape), k, True, False
    return None


def _anderson(P: Operator, z0: Tensor, alpha: float, max_iter: int, tracker: _Tracker, callback: Callback | None,
              window: int, lam: float, batched: bool) -> tuple[Tensor, int, bool, bool]:
    G, x = _damped_rows(P, z0, alpha, batched)
    B = x.shape[0]
    X: list[Tensor] = []  # iterates x_i, each (B, n)
    F: list[Tensor] = []  # images G(x_i), each (B, n)
    gx = G(x)
    k = 0
    for k in range(1, max_iter + 1):
        # 1. residual of the current iterate: ||G(x_k) - x_k||
        done = _step_head(tracker, x, gx, k, callback, z0.shape)
        if done is not None:
            return done
        X.append(x)
        F.append(gx)
        X, F = X[-window:], F[-window:]
        m = len(X)
        # 2. least-squares mixing: min_c ||sum_i c_i (G(x_i) - x_i)||, sum_i c_i = 1,
        #    solved through the bordered normal equations [[0, 1^T], [1, R R^T + lam I]] [nu, c] = [1, 0]
        R = torch.stack([f - xx for f, xx in zip(F, X)], dim=1)  # (B, m, n)
        H = torch.zeros(B, m + 1, m + 1, dtype=R.dtype, device=R.device)
        H[:, 0, 1:] = H[:, 1:, 0] = 1.0
        RRt = R @ R.transpose(1, 2)  # (B, m, m)
        scale = RRt.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(torch.finfo(R.dtype).tiny)  # lam is relative
        H[:, 1:, 1:] = RRt + lam * scale[:, None, None] * torch.eye(m, dtype=R.dtype, device=R.device)
        rhs = torch.zeros(B, m + 1, 1, dtype=R.dtype, device=R.device)
        rhs[:, 0] = 1.0
        c = torch.linalg.solve(H, rhs)[:, 1:, 0]  # (B, m)
        # 3. the next iterate mixes the images: x_{k+1} = sum_i c_i G(x_i)
        x = (c.unsqueeze(1) @ torch.stack(F, dim=1)).squeeze(1)
        gx = G(x)
    # max_iter reached: return the last image, the best available estimate
    return gx.reshape(z0.shape), k, False, False


def _broyden(P: Operator, z0: Tensor, alpha: float, max_iter: int, tracker: _Tracker, callback: Callback | None,
             window: int, batched: bool) -> tuple[Tensor, int, bool, bool]:
    G, x = _damped_rows(P, z0, alpha, batched)
    U: list[Tensor] = []  # H = -I + sum_i u_i v_i^T, per sample
    V: list[Tensor] = []

    def H(v: Tensor, transpose: bool = False) -> Tensor:
        out = -v
        for u, w in zip(U, V):
            a, c = (w, u) if transpose else (u, w)
            out = out + a * (c * v).sum(1, keepdim=True)
        return out

    gx = G(x)
    fx = gx - x
    k = 0
    for k in range(1, max_iter + 1):
        done = _step_head(tracker, x, gx, k, callback, z0.shape)
        if done is not None:
            return done
        s = -H(fx)  # the quasi-Newton step on F(x) = 0
        x_new = x + s
        gx_new = G(x_new)
        f_new = gx_new - x_new
        Hy = H(f_new - fx)
        denom = (s * Hy).sum(1, keepdim=True)
        ok = denom.abs() > torch.finfo(denom.dtype).eps * (s * s).sum(1, keepdim=True).sqrt() * Hy.norm(dim=1, keepdim=True)
        u, v = torch.where(ok, (s - Hy) / torch.where(ok, denom, torch.ones_like(denom)), torch.zeros_like(s)), H(s, transpose=True)
        if len(U) == window:  # memory full: restart from H = -I (dropping only the oldest term breaks the secant pairs)
            U, V = [], []
        U.append(u)
        V.append(v)
        x, gx, fx = x_new, gx_new, f_new
    return gx.reshape(z0.shape), k, False, False


def _picard_frozen(P: Operator, z: Tensor, alpha: float, tol: float, max_iter: int, stop_mode: str, batched: bool) -> Tensor:
    """Picard iteration with a converged sample frozen instead of a stop (``frozen=True`` in :func:`solve`)."""
    done = torch.zeros(z.shape[0] if batched else (), dtype=torch.bool, device=z.device)
    for _ in range(max_iter):
        z_next = alpha * z + (1.0 - alpha) * P(z) if alpha > 0 else P(z)
        with torch.no_grad():
            abs_r = _sample_norms(z_next - z, batched)
            crit = abs_r / _sample_norms(z_next, batched).clamp_min(1e-12) if stop_mode == "rel" else abs_r
            crit = crit if batched else crit.squeeze(0)
        keep = done.reshape(done.shape + (1,) * (z.dim() - done.dim()))
        z = torch.where(keep, z, z_next)
        done = done | (crit <= tol)
    return z


def _iterate(P: Operator, z0: Tensor, *, method: str, alpha: float, tol: float, max_iter: int, stop_mode: str,
             batched: bool, window: int, lam: float, callback: Callback | None, frozen: bool = False) -> Solution:
    if frozen:
        if method != "picard" or callback is not None:
            raise FixptError("a frozen solve (frozen=True: seed-batched training) supports method='picard' without a callback")
        z = _picard_frozen(P, z0, alpha, tol, max_iter, stop_mode, batched)
        empty = torch.zeros(0, z0.shape[0] if batched else 1)
        return Solution(z=z, n_iter=max_iter, converged=False, abs_trace=empty, rel_trace=empty, n_evals=max_iter, method=method)
    tracker = _Tracker(tol, stop_mode, batched)
    if method == "picard":
        z, n, converged, diverged = _picard(P, z0, alpha, max_iter, tracker, callback)
        n_evals = n
    elif method == "anderson":
        z, n, converged, diverged = _anderson(P, z0, alpha, max_iter, tracker, callback, window, lam, batched)
        n_evals = n + (1 if n > 0 else 0)
    else:
        z, n, converged, diverged = _broyden(P, z0, alpha, max_iter, tracker, callback, window, batched)
        n_evals = n + (1 if n > 0 else 0)
    B = z0.shape[0] if batched else 1
    abs_trace, rel_trace = tracker.traces(B)
    return Solution(z=z, n_iter=n, converged=converged, abs_trace=abs_trace, rel_trace=rel_trace,
                    diverged=diverged, n_evals=n_evals, method=method)


def solve(
    P: Operator,
    z0: Tensor,
    *,
    method: Method = "picard",
    alpha: float = 0.5,
    tol: float = 1e-4,
    max_iter: int = 50,
    grad: GradMode = "unroll",
    stop_mode: StopMode = "rel",
    batched: bool = True,
    window: int = 5,
    lam: float = 1e-4,
    backward_tol: float | None = None,
    backward_max_iter: int | None = None,
    callback: Callback | None = None,
    frozen: bool = False,
) -> Solution:
    """Solve :math:`z = P(z)` from ``z0``; see the module docstring for the maths.

    Args:
        P: the operator with its free term, ``z -> T(z) + f``.
        z0: the initial iterate (the paper's :math:`x_0`, usually :math:`f`).
        method: ``"picard"`` (damped fixed-point iteration), ``"anderson"`` or ``"broyden"``.
        alpha: damping :math:`\\alpha \\in [0, 1)`, the weight kept on :math:`z_k` (default: 0.5).
        tol: stop when every sample's residual is ``<= tol`` (default: 1e-4).
        max_iter: at most this many iterations (default: 50).
        grad: ``"unroll"``, ``"last"`` or ``"implicit"`` (default: ``"unroll"``).
        stop_mode: ``"rel"`` (size-normalised) or ``"abs"`` residual for the test (default: ``"rel"``).
        batched: dim 0 of ``z0`` indexes independent samples; False treats ``z0`` as one sample
            (a graph) (default: True).
        window: Anderson history, and Broyden's number of rank-one terms (default: 5).
        lam: Anderson Tikhonov regularisation, relative to the residuals' scale (default: 1e-4).
        backward_tol, backward_max_iter: for the implicit adjoint solve (default: ``tol``, ``2*max_iter``).
        callback: called as ``callback(k, z_k)`` after each iteration, without autograd.
        frozen: freeze converged samples instead of stopping, for ``vmap`` ("Frozen solves" above) (default: False).
    """
    _check(method, grad, stop_mode, alpha, max_iter)
    opts = dict(method=method, alpha=alpha, tol=tol, max_iter=max_iter, stop_mode=stop_mode,
                batched=batched, window=window, lam=lam, frozen=frozen)
    track_grad = torch.is_grad_enabled()
    if grad == "unroll" or not track_grad:
        return _iterate(P, z0, callback=callback, **opts)

    with torch.no_grad():
        sol = _iterate(P, z0.detach(), callback=callback, **opts)
    z_star = sol.z.detach()
    if sol.diverged:
        sol.z = z_star
        return sol
    # one undamped step with autograd re-attaches z* to the parameters of P (and to f)
    z = P(z_star)
    sol.n_evals += 1
    if grad == "implicit" and z.requires_grad:
        z.register_hook(_adjoint_hook(P, z_star, method=method, alpha=alpha,
                                      tol=tol if backward_tol is None else backward_tol,
                                      max_iter=2 * max_iter if backward_max_iter is None else backward_max_iter,
                                      batched=batched, window=window, lam=lam, info=sol.info))
    sol.z = z
    return sol


def _adjoint_hook(P: Operator, z_star: Tensor, *, info: dict, **opts) -> Callable[[Tensor], Tensor]:
    r"""Backward hook replacing :math:`g = \partial L/\partial z` by the adjoint :math:`y = g + J^\top y`."""
    z_in = z_star.clone().requires_grad_(True)
    with torch.enable_grad():
        Pz = P(z_in)

    def hook(g: Tensor) -> Tensor:
        vjp = lambda y: torch.autograd.grad(Pz, z_in, y, retain_graph=True)[0] + g
        with torch.no_grad():
            adj = _iterate(vjp, g, stop_mode="rel", callback=None, **opts)
        info["backward"] = {"n_iter": adj.n_iter, "converged": adj.converged,
                            "residual": float(adj.residual.max()) if adj.n_iter else float("nan")}
        if adj.diverged:
            raise FloatingPointError("implicit backward: the adjoint fixed-point solve diverged; "
                                     "the operator is not contractive at z*, use grad='unroll' or 'last'")
        return adj.z

    return hook
