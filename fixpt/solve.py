r"""Fixed-point solvers for :math:`z = P(z)`, with :math:`P(z) = T(z) + f`.

The solvers iterate the *damped* map of the paper's Algorithms 1 and 2,

.. math::
    G(z) = \alpha z + (1 - \alpha) P(z),

which has the same fixed points as :math:`P` and, if :math:`P` is a contraction with factor
:math:`k`, is one with factor :math:`\alpha + (1 - \alpha) k`.

* ``picard``: :math:`z_{k+1} = G(z_k)` (Alg. 1, line 5).
* ``anderson``: Anderson acceleration (type II) of :math:`G`: the next iterate is the
  combination :math:`\sum_i c_i G(z_i)` of the last ``window`` images whose residuals
  :math:`\sum_i c_i (G(z_i) - z_i)` have the least norm, subject to :math:`\sum_i c_i = 1`
  (Walker & Ni, 2011). ``lam`` regularises the small least-squares system, relative to the mean
  squared residual norm in the window, so it does not take over as the residuals shrink. A sample
  whose residual :math:`r_k` grew (:math:`r_k > r_{k-1}`) restarts: its older entries leave the
  window and its next step is the plain step :math:`G(z_k)`. (Without it, a trained PIGN operator
  with window 5 stalled near :math:`r/\|G\| = 5 \cdot 10^{-3}` for 600 iterations; see docs/benchmarks.md
  for what the rule costs elsewhere.)
* ``broyden``: Broyden's "good" method on the residual :math:`F(z) = G(z) - z`: the step
  :math:`z_{k+1} = z_k - H_k F(z_k)` with :math:`H_k \approx J_F(z_k)^{-1}`, from :math:`H_0 = -I`
  (the first step is the Picard step) and updated so that :math:`H_{k+1} y_k = s_k`, with
  :math:`s_k = z_{k+1} - z_k`, :math:`y_k = F(z_{k+1}) - F(z_k)`:
  :math:`H_{k+1} = H_k + (s_k - H_k y_k)\, s_k^\top H_k / (s_k^\top H_k y_k)` (Sherman-Morrison form).
  :math:`H` is built from the last ``window`` pairs :math:`(s_i, y_i)` in compact form
  (:class:`_BroydenMemory`): the window slides, the oldest pair dropped, rather than restarting from
  :math:`-I`; a pair whose update denominator :math:`s^\top H y` vanishes is skipped, and a sample whose
  pairs make a singular system restarts. On a linear map with full memory it terminates in at most
  :math:`2n` steps (Gay, 1979).

Residuals. At each iteration the residual is :math:`r_k = \|G(z_k) - z_k\|_2` (for Picard this is
:math:`\|z_{k+1} - z_k\|_2`), per sample of the batch: ``abs_trace`` holds :math:`r_k`,
``rel_trace`` the size-normalised :math:`r_k / \|G(z_k)\|_2`. The solve stops as Algorithm 1 does,
when every sample's residual is ``<= tol`` (relative by default, ``stop_mode="abs"`` for the
absolute one) or after ``max_iter`` iterations. A non-finite iterate stops the solve at once:
``Solution.diverged`` is set and ``z`` is the last finite iterate.

The cost of a step's test. The two norms of a step and the test's two numbers (the largest
criterion, the largest size) are computed on the device and read back together, one host read per
step. On CUDA, Picard queues step :math:`k+1` before it reads step :math:`k`'s test, so the device
is not idle while the host waits. The iterate, traces, ``n_iter``, flags and callbacks are those
of the step that met the criterion, exactly as without the early step; the extra step is discarded
and counted in ``n_evals`` (``n_iter + 1`` when the solve stops before ``max_iter``). On the CPU,
where a read does not wait, no step is run early.

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

import math
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


def _norm_dtype(dtype: torch.dtype) -> torch.dtype | None:
    """Residual norms accumulate in at least float32 (None: the input's own dtype already is)."""
    return None if dtype in (torch.float32, torch.float64) else torch.promote_types(dtype, torch.float32)


def _sample_norms(x: Tensor, batched: bool) -> Tensor:
    """Euclidean norm per sample: over all dims but the first when batched, else one norm."""
    flat = x.reshape(x.shape[0], -1) if batched else x.reshape(1, -1)
    return torch.linalg.vector_norm(flat, dim=1, dtype=_norm_dtype(flat.dtype))


def _damp(z: Tensor, pz: Tensor, alpha: float) -> Tensor:
    """The damped map's value :math:`G(z) = \\alpha z + (1 - \\alpha) P(z)`, as one ``lerp`` when the dtypes agree."""
    if alpha == 0:
        return pz
    if pz.dtype == z.dtype:
        return torch.lerp(pz, z, alpha)  # pz + alpha (z - pz)
    return alpha * z + (1.0 - alpha) * pz


def _check(method: str, grad: str, stop_mode: str, alpha: float, max_iter: int) -> None:
    for value, valid, name in ((method, METHODS, "method"), (grad, GRAD_MODES, "grad"), (stop_mode, STOP_MODES, "stop_mode")):
        if value not in valid:
            raise FixptError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
    if not 0.0 <= alpha < 1.0:
        raise FixptError(f"alpha={alpha} is outside [0, 1); alpha is the weight kept on z_k")
    if max_iter < 0:
        raise FixptError(f"max_iter={max_iter} must be >= 0")


def _reads_late(device: torch.device) -> bool:
    """Whether Picard runs step k+1 while it reads step k's stop test: on CUDA, where a read waits for the device."""
    return device.type == "cuda"


class _HostRead:
    """The two numbers of a stop test (the largest criterion, the largest size; NaN propagates), brought to the
    host. On the CPU two reductions and two reads; on CUDA one stacked copy into pinned memory behind an event,
    so that work queued after it (the next step) keeps the device busy while the host waits."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.pending: tuple[Tensor, Tensor] | None = None
        self.host: Tensor | None = None
        self.event = torch.cuda.Event() if self.cuda else None

    def start(self, crit: Tensor, size: Tensor) -> None:
        if not self.cuda:
            self.pending = (crit, size)
            return
        flags = torch.stack((crit.max(), size.max()))
        if self.host is None or self.host.dtype != flags.dtype:
            self.host = torch.empty(flags.shape, dtype=flags.dtype, pin_memory=True)
        self.host.copy_(flags, non_blocking=True)
        self.event.record()

    def read(self) -> tuple[float, float]:
        if not self.cuda:
            crit, size = self.pending
            return crit.max().item(), size.max().item()
        self.event.synchronize()
        crit, size = self.host.tolist()
        return crit, size


class _Tracker:
    """Records per-sample residuals and decides when to stop (Alg. 1, line 3).

    A test is queued (``record``: the norms of the step and, on the device, the largest criterion
    and the largest size) and then read (``result``: one host read of those two numbers), so that a
    solver can queue more work in between."""

    def __init__(self, tol: float, stop_mode: str, batched: bool, like: Tensor):
        self.tol, self.rel_mode, self.batched = tol, stop_mode == "rel", batched
        # per-sample norms without a reshape: over dims 1.. (a 1-D batch is viewed as (B, 1)), or one norm
        self.flat = (like.shape[0], 1) if batched and like.dim() == 1 else None
        self.dim = tuple(range(1, like.dim())) if batched and like.dim() > 1 else (1 if batched else None)
        self.abs: list[Tensor] = []
        self.rel: list[Tensor] = []
        self.reader = _HostRead(like.device)

    def record(self, z: Tensor, gz: Tensor) -> None:
        """Queue the test of ``||G(z) - z||``; no host read."""
        if torch.is_grad_enabled():  # (entering no_grad costs as much as a small op: only when needed)
            with torch.no_grad():
                return self.record(z, gz)
        d = gz - z
        if self.flat is not None:
            d, gz = d.reshape(self.flat), gz.reshape(self.flat)
        dtype = _norm_dtype(d.dtype)
        abs_r = torch.linalg.vector_norm(d, dim=self.dim, dtype=dtype)
        size = torch.linalg.vector_norm(gz, dim=self.dim, dtype=dtype)
        rel_r = abs_r / size.clamp_min(1e-12)
        self.abs.append(abs_r)
        self.rel.append(rel_r)
        self.reader.start(rel_r if self.rel_mode else abs_r, size)

    def result(self) -> tuple[bool, bool]:
        """(finite, converged) of the last recorded step; a non-finite step is dropped from the traces."""
        crit, size = self.reader.read()
        # a non-finite norm means a non-finite (or overflowing) entry: no separate pass over gz
        if not math.isfinite(size):
            self.abs.pop()
            self.rel.pop()
            return False, False
        return True, crit <= self.tol

    def update(self, z: Tensor, gz: Tensor) -> tuple[bool, bool]:
        """Record ``||G(z) - z||``; return (finite, converged)."""
        self.record(z, gz)
        return self.result()

    def traces(self, batch: int) -> tuple[Tensor, Tensor]:
        if not self.abs:
            empty = torch.zeros(0, batch)
            return empty, empty.clone()
        return torch.stack(self.abs).reshape(-1, batch).cpu(), torch.stack(self.rel).reshape(-1, batch).cpu()


def _picard(P: Operator, z: Tensor, alpha: float, max_iter: int, tracker: _Tracker, callback: Callback | None,
            ahead: bool) -> tuple[Tensor, int, bool, bool, int]:
    """Damped Picard; with ``ahead``, step k+1 is queued before step k's test is read (and discarded when
    step k ends the solve, so ``n_evals`` counts one more evaluation than ``n_iter``)."""
    evals, k, z_next = 0, 0, None
    for k in range(1, max_iter + 1):
        if z_next is None:
            # 1. damped Picard step (Alg. 1, line 5): z_{k+1} = a z_k + (1 - a) P(z_k)
            z_next = _damp(z, P(z), alpha)
            evals += 1
        # 2. residual ||z_{k+1} - z_k|| and stopping test (Alg. 1, line 3)
        tracker.record(z, z_next)
        z_ahead = None
        if ahead and k < max_iter:
            z_ahead = _damp(z_next, P(z_next), alpha)  # runs on the device while the test is read
            evals += 1
        finite, converged = tracker.result()
        if not finite:
            return z, k, False, True, evals
        z = z_next
        if callback is not None:
            callback(k, z)
        if converged:
            return z, k, True, False, evals
        z_next = z_ahead
    return z, k, max_iter == 0, False, evals


def _damped_rows(P: Operator, z0: Tensor, alpha: float, batched: bool) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """The damped map on flattened samples, ``G: (B, n) -> (B, n)``, and ``z0`` as such rows."""
    shape = z0.shape
    B = shape[0] if batched else 1

    def G(x: Tensor) -> Tensor:
        return _damp(x, P(x.reshape(shape)).reshape(B, -1), alpha)

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


def _anderson_weights(X: list[Tensor], F: list[Tensor], live: list[Tensor], lam: float) -> Tensor:
    r"""Least-squares mixing weights (B, m): :math:`\min_c \|\sum_i c_i (G(x_i) - x_i)\|`, :math:`\sum_i c_i = 1`,
    over the entries a sample still uses (``live``; the others get :math:`c_i = 0`), through the bordered
    normal equations :math:`[[0, 1^\top], [1, R R^\top + \lambda I]] [\nu, c] = [1, 0]`."""
    R = torch.stack([f - xx for f, xx in zip(F, X)], dim=1)  # (B, m, n)
    B, m = R.shape[:2]
    use = torch.stack(live, dim=1)  # (B, m)
    eye = torch.eye(m, dtype=R.dtype, device=R.device)
    RRt = R @ R.transpose(1, 2)  # (B, m, m)
    diag = torch.where(use, RRt.diagonal(dim1=1, dim2=2), 0.0)
    scale = diag.sum(1) / use.sum(1)  # lam is relative to the residuals' scale ...
    scale = torch.where(scale > 0, scale, 1.0)  # ... and absolute for a sample already at its fixed point (no 0 * lam)
    H = torch.zeros(B, m + 1, m + 1, dtype=R.dtype, device=R.device)
    H[:, 0, 1:] = H[:, 1:, 0] = use.to(R.dtype)
    # an unused entry's row and column are the identity's, with a zero right-hand side: its weight is 0
    H[:, 1:, 1:] = torch.where(use[:, :, None] & use[:, None, :], RRt + lam * scale[:, None, None] * eye, eye)
    rhs = torch.zeros(B, m + 1, 1, dtype=R.dtype, device=R.device)
    rhs[:, 0] = 1.0
    return torch.linalg.solve(H, rhs)[:, 1:, 0]


def _anderson(P: Operator, z0: Tensor, alpha: float, max_iter: int, tracker: _Tracker, callback: Callback | None,
              window: int, lam: float, batched: bool) -> tuple[Tensor, int, bool, bool]:
    G, x = _damped_rows(P, z0, alpha, batched)
    B = x.shape[0]
    X: list[Tensor] = []  # iterates x_i, each (B, n)
    F: list[Tensor] = []  # images G(x_i), each (B, n)
    live: list[Tensor] = []  # (B,) per entry: whether a sample still mixes it
    gx = G(x)
    k, last = 0, None
    for k in range(1, max_iter + 1):
        # 1. residual of the current iterate: ||G(x_k) - x_k||
        done = _step_head(tracker, x, gx, k, callback, z0.shape)
        if done is not None:
            return done
        r = tracker.abs[-1].reshape(B)
        if last is not None:  # a sample whose residual grew restarts: its older entries are dropped
            grew = r > last
            live = [use & ~grew for use in live]
        last = r
        X, F = (X + [x])[-window:], (F + [gx])[-window:]
        live = (live + [torch.ones(B, dtype=torch.bool, device=x.device)])[-window:]
        # 2. least-squares mixing, 3. the next iterate mixes the images: x_{k+1} = sum_i c_i G(x_i)
        c = _anderson_weights(X, F, live, lam)
        x = (c.unsqueeze(1) @ torch.stack(F, dim=1)).squeeze(1)
        gx = G(x)
    # max_iter reached: return the last image, the best available estimate
    return gx.reshape(z0.shape), k, False, False


class _BroydenMemory:
    r"""The limited-memory inverse Jacobian of Broyden's good method, per sample, in compact form
    (Byrd, Nocedal & Schnabel, 1994): from :math:`H_0 = -I` and the pairs :math:`S = [s_i]`,
    :math:`Y = [y_i]` (oldest first) kept in the window,

    .. math::
        H = -I + (S + Y)\, (S^\top Y + L)^{-1} S^\top, \qquad L = \text{the strict lower triangle of } S^\top S,

    which is :math:`H_0` updated by Broyden's rule with each pair in turn (:math:`M = S^\top Y + L` is
    kept up to date). The matrix of any subset of pairs is the one of their principal submatrix of
    :math:`M`, so the window slides (the oldest pair is dropped) instead of restarting from :math:`-I`,
    and a pair is left out per sample by a mask: one whose update denominator
    :math:`s^\top H y` vanishes, or all of a sample's pairs when its :math:`M` is singular (a restart)."""

    def __init__(self, rows: Tensor, window: int):
        B, n = rows.shape
        self.window = window
        self.S = rows.new_zeros(B, 0, n)  # s_i, as rows
        self.Y = rows.new_zeros(B, 0, n)
        self.M = rows.new_zeros(B, 0, 0)  # M_ij = s_i^T y_j + [i > j] s_i^T s_j
        self.mask = torch.zeros(B, 0, dtype=torch.bool, device=rows.device)  # the pairs in use, per sample

    def apply(self, v: Tensor) -> Tensor:
        """:math:`H v` for rows ``v`` (B, n)."""
        k = self.S.shape[1]
        if k == 0:
            return -v
        pair = self.mask[:, :, None] & self.mask[:, None, :]
        eye = torch.eye(k, dtype=v.dtype, device=v.device)
        M = torch.where(pair, self.M, eye)  # unused pairs: identity rows, zero right-hand side
        rhs = torch.where(self.mask, (self.S @ v[:, :, None]).squeeze(2), 0.0)
        c, info = torch.linalg.solve_ex(M, rhs)
        with torch.no_grad():
            singular = (info != 0) | ~torch.isfinite(c).all(dim=1)
            if bool(singular.any()):  # restart those samples: H = -I
                self.mask = self.mask & ~singular[:, None]
        c = torch.where(self.mask, c, 0.0)
        return -v + (c[:, None, :] @ (self.S + self.Y)).squeeze(1)

    def add(self, s: Tensor, y: Tensor) -> None:
        """Take the pair :math:`s_k = x_{k+1} - x_k`, :math:`y_k = F(x_{k+1}) - F(x_k)` (dropping the oldest when full)."""
        Hy = self.apply(y)
        with torch.no_grad():  # Sherman-Morrison's denominator s^T H y: a vanishing one is skipped
            denom = (s * Hy).sum(1).abs()
            ok = denom > torch.finfo(s.dtype).eps * torch.linalg.vector_norm(s, dim=1) * torch.linalg.vector_norm(Hy, dim=1)
        s3, y3 = s[:, :, None], y[:, :, None]
        column = (self.S @ y3).squeeze(2)  # M_{i,new} = s_i^T y (i older)
        row = (self.Y @ s3 + self.S @ s3).squeeze(2)  # M_{new,j} = s^T y_j + s^T s_j (j older)
        corner = (s * y).sum(1)[:, None, None]
        self.M = torch.cat((torch.cat((self.M, column[:, :, None]), 2), torch.cat((row[:, None, :], corner), 2)), 1)
        self.S = torch.cat((self.S, s[:, None, :]), 1)
        self.Y = torch.cat((self.Y, y[:, None, :]), 1)
        self.mask = torch.cat((self.mask, ok[:, None]), 1)
        if self.S.shape[1] > self.window:
            drop = self.S.shape[1] - self.window
            self.S, self.Y, self.M, self.mask = self.S[:, drop:], self.Y[:, drop:], self.M[:, drop:, drop:], self.mask[:, drop:]


def _broyden(P: Operator, z0: Tensor, alpha: float, max_iter: int, tracker: _Tracker, callback: Callback | None,
             window: int, batched: bool) -> tuple[Tensor, int, bool, bool]:
    G, x = _damped_rows(P, z0, alpha, batched)
    memory = _BroydenMemory(x, window)
    gx = G(x)
    fx = gx - x
    k = 0
    for k in range(1, max_iter + 1):
        done = _step_head(tracker, x, gx, k, callback, z0.shape)
        if done is not None:
            return done
        s = -memory.apply(fx)  # the quasi-Newton step on F(x) = 0: x_{k+1} = x_k - H_k F(x_k)
        x_new = x + s
        gx_new = G(x_new)
        f_new = gx_new - x_new
        memory.add(s, f_new - fx)
        x, gx, fx = x_new, gx_new, f_new
    return gx.reshape(z0.shape), k, False, False


def _picard_frozen(P: Operator, z: Tensor, alpha: float, tol: float, max_iter: int, stop_mode: str, batched: bool) -> Tensor:
    """Picard iteration with a converged sample frozen instead of a stop (``frozen=True`` in :func:`solve`)."""
    done = torch.zeros(z.shape[0] if batched else (), dtype=torch.bool, device=z.device)
    for _ in range(max_iter):
        z_next = _damp(z, P(z), alpha)
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
    B = z0.shape[0] if batched else 1
    # the tracker sees z's own shape in Picard and flattened rows (B, n) in the accelerated solvers
    tracker = _Tracker(tol, stop_mode, batched, z0 if method == "picard" else z0.reshape(B, -1))
    if method == "picard":
        z, n, converged, diverged, n_evals = _picard(P, z0, alpha, max_iter, tracker, callback, _reads_late(z0.device))
    elif method == "anderson":
        z, n, converged, diverged = _anderson(P, z0, alpha, max_iter, tracker, callback, window, lam, batched)
        n_evals = n + (1 if n > 0 else 0)
    else:
        z, n, converged, diverged = _broyden(P, z0, alpha, max_iter, tracker, callback, window, batched)
        n_evals = n + (1 if n > 0 else 0)
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
        def adjoint_step(y: Tensor) -> Tensor:
            r""":math:`y \mapsto J^\top y + g`; autograd returns None for :math:`J^\top y` when P does not read z (J = 0)."""
            (jt_y,) = torch.autograd.grad(Pz, z_in, y, retain_graph=True, allow_unused=True)
            return g if jt_y is None else jt_y + g

        with torch.no_grad():
            adj = _iterate(adjoint_step, g, stop_mode="rel", callback=None, **opts)
        info["backward"] = {"n_iter": adj.n_iter, "converged": adj.converged,
                            "residual": float(adj.residual.max()) if adj.n_iter else float("nan")}
        if adj.diverged:
            raise FloatingPointError("implicit backward: the adjoint fixed-point solve diverged; "
                                     "the operator is not contractive at z*, use grad='unroll' or 'last'")
        return adj.z

    return hook
