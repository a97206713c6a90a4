r"""Contraction diagnostics: local Lipschitz constants, spectral radius and Banach bounds.

For a Frechet-differentiable operator :math:`P` on a convex set :math:`U`, Lemma 1 of the paper
gives :math:`\operatorname{Lip}_U(P) \le \sup_{z \in U} \|J_P(z)\|_2`, so the local derivative norm
is the quantity that decides whether Picard iteration converges (Theorem 3). We estimate

* :func:`lipschitz`: :math:`\|J_P(z)\|_2 = \sqrt{\lambda_{\max}(J^\top J)}` by power iteration on
  :math:`J^\top J`, with :math:`Jv` from ``torch.func.jvp`` and :math:`J^\top u` from ``torch.func.vjp``;
* :func:`spectral_radius`: :math:`\rho(J_P(z)) = \max |\lambda_i|` from the Ritz values of an
  Arnoldi (Krylov) factorisation :math:`J V_m = V_{m+1} \bar H_m` (exact once :math:`m` reaches
  the dimension); :math:`\rho \le \|J\|_2`, and :math:`\rho < 1` at :math:`z^*` is the condition
  for local convergence;
* :func:`empirical_ratio`: :math:`\max \|P(x) - P(y)\| / \|x - y\|` over sampled pairs, a lower
  bound on the Lipschitz constant;
* :func:`a_priori_bound` and :func:`a_posteriori_bound`: the Banach error bounds (paper eq. 4, 5)
  from a contraction factor :math:`k < 1`.

Certified *upper* bounds are architecture-specific and come from the models
(``certified_lipschitz``); :func:`contraction` gathers everything into one report.

**Other norms.** Banach's theorem holds in any norm, and the one that makes an operator a contraction need
not be the Euclidean one. For a weighted norm :math:`\|z\|_S = \|S z\|_2` with a positive diagonal
:math:`S` (e.g. :math:`S = D^{1/2}` over the nodes of a graph, under which mean aggregation
:math:`D^{-1}A` on an undirected graph has norm 1 while its Euclidean norm grows with the hubs' degrees),
:func:`conjugate` gives :math:`P_S(y) = S\,P(S^{-1} y)`: its derivative :math:`S J_P S^{-1}` has Euclidean
norm :math:`\|J_P\|_S`, so every estimate above, run on :math:`P_S` at the points :math:`S z`, is the
same estimate in the norm :math:`\|\cdot\|_S` (the spectral radius is unchanged: a similarity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor
from torch.func import jvp as _jvp
from torch.func import vjp

Operator = Callable[[Tensor], Tensor]


def jvp(P: Operator, primals: tuple, tangents: tuple):
    """``torch.func.jvp`` with attention computed by the math kernel of ``scaled_dot_product_attention``:
    the fused CPU and CUDA kernels have no forward-mode derivative, the math one does (same values)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        return _jvp(P, primals, tangents)


def _flat(x: Tensor, batched: bool) -> Tensor:
    return x.reshape(x.shape[0], -1) if batched else x.reshape(1, -1)


def _normalise(v: Tensor, batched: bool) -> tuple[Tensor, Tensor]:
    """Scale each sample of ``v`` to unit norm; return (v / ||v||, ||v||) with one norm per sample."""
    norms = torch.linalg.vector_norm(_flat(v, batched), dim=1).clamp_min(1e-30)
    shape = (-1,) + (1,) * (v.dim() - 1) if batched else (1,) * v.dim()
    return v / norms.reshape(shape), norms


def conjugate(P: Operator, scale: Tensor | None) -> Operator:
    r""":math:`P_S(y) = S\,P(S^{-1} y)` for :math:`S` = diag(``scale``) (broadcast against the state): the
    operator in the coordinates :math:`y = S z`, whose Euclidean derivative norm is :math:`\|J_P\|_S`.
    ``scale`` None is the identity (the Euclidean norm)."""
    if scale is None:
        return P
    return lambda y: scale * P(y / scale)


def random_unit(z: Tensor, batched: bool, generator: torch.Generator | None = None) -> Tensor:
    """A random direction shaped like ``z``, of unit norm per sample (drawn on the CPU, so a seed gives the same
    vector on every device)."""
    v = torch.randn(z.shape, generator=generator, dtype=z.dtype, device="cpu").to(z.device)
    return _normalise(v, batched)[0]


def lipschitz(P: Operator, z: Tensor, *, iters: int = 100, tol: float = 1e-6, batched: bool = False,
              generator: torch.Generator | None = None) -> Tensor:
    r"""Local Frechet-derivative norm :math:`\|J_P(z)\|_2` by power iteration on :math:`J^\top J`.

    .. math::
        v_{i+1} = \frac{J^\top J v_i}{\|J^\top J v_i\|}, \qquad
        \sigma_{\max} \approx \|J v_i\|

    Args:
        P: the operator; only its derivative at ``z`` matters (the free term drops out).
        z: the point of linearisation.
        iters: at most this many power steps (default: 100).
        tol: stop when the estimate changes by less than ``tol`` relatively (default: 1e-6).
        batched: P acts on each sample of dim 0 independently, so :math:`J` is block-diagonal and
            one norm per sample is returned (default: False: one norm for the whole ``z``).
        generator: random start vector's generator.

    Returns:
        A tensor of norms, shape ``(B,)`` when batched else ``(1,)``.
    """
    z = z.detach()
    _, vjp_fn = vjp(P, z)
    v = random_unit(z, batched, generator)
    sigma = torch.zeros(z.shape[0] if batched else 1, device=z.device)
    for _ in range(max(iters, 1)):
        # 1. u = J v (forward mode), sigma = ||J v|| for the unit v
        _, u = jvp(P, (z,), (v,))
        u = u.detach()  # no graph back to the parameters
        new_sigma = torch.linalg.vector_norm(_flat(u, batched), dim=1)
        # 2. w = J^T u = J^T J v (reverse mode), the next direction
        (w,) = vjp_fn(u)
        v, _ = _normalise(w.detach(), batched)
        done = bool(((new_sigma - sigma).abs() <= tol * new_sigma.clamp_min(1e-30)).all())
        sigma = new_sigma
        if done:
            break
    return sigma.detach()


def spectral_radius(P: Operator, z: Tensor, *, krylov_dim: int = 40, generator: torch.Generator | None = None) -> float:
    r"""Spectral radius :math:`\rho(J_P(z))` from the Ritz values of an Arnoldi factorisation.

    Builds an orthonormal basis :math:`V_m` of the Krylov space
    :math:`\mathrm{span}\{v, Jv, \dots, J^{m-1} v\}` with modified Gram-Schmidt and returns
    :math:`\max_i |\lambda_i(H_m)|`, :math:`H_m = V_m^\top J V_m`. The Ritz values converge to
    the extreme eigenvalues first and are exact when :math:`m` equals the dimension (or the
    Krylov space becomes invariant). The whole ``z`` is one vector (one radius).
    """
    z = z.detach()
    n = z.numel()
    m = min(krylov_dim, n)
    v = torch.randn(z.shape, generator=generator, dtype=torch.float64, device="cpu").to(z.device)
    V = [v.reshape(-1) / torch.linalg.vector_norm(v)]
    H = torch.zeros(m + 1, m, dtype=torch.float64)
    for j in range(m):
        _, w = jvp(P, (z,), (V[j].reshape(z.shape).to(z.dtype),))
        w = w.detach().reshape(-1).to(torch.float64)
        for i in range(j + 1):  # modified Gram-Schmidt, twice for stability
            h = torch.dot(V[i], w)
            w = w - h * V[i]
            H[i, j] += h.cpu()
        for i in range(j + 1):
            h = torch.dot(V[i], w)
            w = w - h * V[i]
            H[i, j] += h.cpu()
        h_next = torch.linalg.vector_norm(w)
        H[j + 1, j] = h_next.cpu()
        if h_next <= 1e-12 * H[: j + 1, j].abs().max().clamp_min(1e-30):
            m = j + 1  # invariant subspace: the Ritz values are exact eigenvalues
            break
        V.append(w / h_next)
    eig = torch.linalg.eigvals(H[:m, :m])
    return float(eig.abs().max())


def empirical_ratio(P: Operator, points: Sequence[Tensor], *, n_random: int = 8, scale: float = 1e-2,
                    generator: torch.Generator | None = None) -> float:
    r"""Largest observed :math:`\|P(x) - P(y)\| / \|x - y\|`, a lower bound on :math:`\mathrm{Lip}(P)`.

    Pairs: every pair of the given points, and for each point ``n_random`` random perturbations
    :math:`y = x + \epsilon \, \|x\| \, u / \|u\|` with :math:`\epsilon =` ``scale``.
    """
    with torch.no_grad():
        images = [P(p) for p in points]
        best = 0.0
        for i in range(len(points)):
            for j in range(i + 1, len(points)):
                d = torch.linalg.vector_norm(points[i] - points[j])
                if d > 0:
                    best = max(best, float(torch.linalg.vector_norm(images[i] - images[j]) / d))
        for p, Pp in zip(points, images):
            radius = scale * float(torch.linalg.vector_norm(p).clamp_min(1.0))
            for _ in range(n_random):
                u = torch.randn(p.shape, generator=generator, dtype=p.dtype, device="cpu").to(p.device)
                q = p + radius * u / torch.linalg.vector_norm(u)
                best = max(best, float(torch.linalg.vector_norm(P(q) - Pp) / torch.linalg.vector_norm(q - p)))
    return best


def a_priori_bound(k: float, n: int, first_step: float) -> float:
    r"""Banach a-priori bound (paper eq. 4): :math:`\|u_n - u^*\| \le \frac{k^n}{1-k} \|u_1 - u_0\|`."""
    if not 0 <= k < 1:
        return math.inf
    return k**n / (1.0 - k) * first_step


def a_posteriori_bound(k: float, last_step: float) -> float:
    r"""Banach a-posteriori bound (paper eq. 5): :math:`\|u_n - u^*\| \le \frac{k}{1-k} \|u_n - u_{n-1}\|`."""
    if not 0 <= k < 1:
        return math.inf
    return k / (1.0 - k) * last_step


def damped_factor(k: float, alpha: float) -> float:
    r"""Contraction factor of :math:`G = \alpha I + (1-\alpha) P` given :math:`\mathrm{Lip}(P) \le k`."""
    return alpha + (1.0 - alpha) * k


@dataclass
class ContractionReport:
    """Everything ``fixpt check-contraction`` prints; ``as_dict`` is its ``--json``."""

    local_norms: list[float]
    spectral_radius: float
    empirical_ratio: float
    certified_bound: float | None
    certified_reason: str
    threshold: float
    alpha: float
    bounds: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``certified`` (a proven bound below the threshold), ``empirical`` (every estimate below
        it, no proof) or ``not contractive``."""
        if self.certified_bound is not None and self.certified_bound < self.threshold:
            return "certified"
        if max(self.local_norms) < self.threshold and self.empirical_ratio < self.threshold:
            return "empirical"
        return "not contractive"

    @property
    def contractive(self) -> bool:
        return self.verdict != "not contractive"

    @property
    def factor_basis(self) -> str:
        return "certified bound" if self.certified_bound is not None else "local estimate (not proven)"

    @property
    def damped_factor(self) -> float:
        """Contraction factor of the damped map, from the certified bound, else the largest local norm."""
        k = self.certified_bound if self.certified_bound is not None else max(self.local_norms)
        return damped_factor(k, self.alpha)

    def add_banach_bounds(self, n_iter: int, first_step: float, last_step: float) -> None:
        """Error bounds (eq. 4, 5) for the n-th iterate of the damped map, from its first and last steps."""
        kG = self.damped_factor
        self.bounds = {"factor": kG, "factor_basis": self.factor_basis, "n_iter": n_iter,
                       "a_priori": a_priori_bound(kG, n_iter, first_step), "a_posteriori": a_posteriori_bound(kG, last_step)}

    def as_dict(self) -> dict:
        norms = torch.tensor(self.local_norms)
        return {
            "local_norm": {"min": float(norms.min()), "median": float(norms.median()), "max": float(norms.max())},
            "spectral_radius": self.spectral_radius,
            "empirical_ratio": self.empirical_ratio,
            "certified_bound": self.certified_bound,
            "certified_reason": self.certified_reason,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "damped_factor": self.damped_factor,
            "banach": self.bounds,
            "verdict": self.verdict,
            "contractive": self.contractive,
        }


def contraction(P: Operator, points: Sequence[Tensor], *, batched: bool = False, certified: tuple[float | None, str] = (None, "not given"),
                threshold: float = 1.0, alpha: float = 0.0, iters: int = 100, seed: int = 0) -> ContractionReport:
    """Local norms at every point, the spectral radius at the last one (the fixed point), the
    empirical pair ratio over all points, and the given certified bound, in one report."""
    g = torch.Generator().manual_seed(seed)
    norms: list[float] = []
    for p in points:
        norms.extend(lipschitz(P, p, iters=iters, batched=batched, generator=g).tolist())
    rho = spectral_radius(P, points[-1], generator=g)
    ratio = empirical_ratio(P, list(points), generator=g)
    return ContractionReport(local_norms=norms, spectral_radius=rho, empirical_ratio=ratio,
                             certified_bound=certified[0], certified_reason=certified[1],
                             threshold=threshold, alpha=alpha)
