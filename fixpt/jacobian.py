r"""Differentiable estimates of the Frechet derivative's size, for a loss that pushes an operator toward contraction.

The paper (appendix A.2, after Theorem 3) proposes to "add a term in the loss where the Frechet derivative
appears explicitly". At a point :math:`z^*` (held fixed: the gradient flows through the parameters
:math:`\theta`, not through :math:`z^*`'s own dependence on them), with :math:`J = J_P(z^*; \theta)`:

* :class:`SpectralNorm`: :math:`\sigma(\theta) = \|J\|_2`, by power iteration on :math:`J^\top J`. The unit
  vector :math:`v` is kept from one call to the next (warm start), so after the first calls one step per
  call suffices. A call runs ``steps - 1`` plain power steps, then

  .. math::
      u = \frac{J v}{\|J v\|}, \qquad \hat\sigma = u^\top J v = \langle J^\top u, v \rangle, \qquad
      v \leftarrow \frac{J^\top u}{\|J^\top u\|},

  with :math:`Jv` from a forward-mode product (no graph) and :math:`J^\top u` from one reverse-mode product
  *with* a graph to :math:`\theta`. With :math:`u, v` held fixed, :math:`\hat\sigma = \|Jv\|` and
  :math:`\partial\hat\sigma/\partial\theta = u^\top (\partial J/\partial\theta)\, v`, which is the derivative
  of :math:`\sigma_{\max}(J)` once :math:`v` is the top right singular vector (a simple top singular value).
  The same reverse product gives the next :math:`v`, so a call with ``steps=1`` costs one forward-mode
  product, one evaluation of :math:`P` and one reverse product.
* :class:`FrobeniusNorm`: :math:`\|J\|_F / \sqrt{n}` (the root-mean-square singular value; :math:`n` the
  dimension of a sample), by Hutchinson's estimator
  :math:`\|J\|_F^2 = \mathbb{E}_\epsilon \|J^\top \epsilon\|^2` over Rademacher probes :math:`\epsilon`, each
  one reverse product with a graph. This is torchdeq's regulariser. It is cheaper and smoother than the
  spectral norm but it is *not* a bound on it (:math:`\|J\|_F / \sqrt n \le \|J\|_2`): a target on it does
  not make the operator a contraction.

For a batch of independent samples (``batched``), :math:`J` is block-diagonal and every estimate is per
sample. :func:`hinge_penalty` turns the estimates into the loss term :math:`\lambda\,\mathrm{mean}_i\,
\mathrm{relu}(\sigma_i - k)^2`, zero for an operator already below the target :math:`k`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .contraction import _flat, _normalise, jvp, random_unit

Operator = Callable[[Tensor], Tensor]
NORMS = ("spectral", "frobenius")


def _per_sample_dot(a: Tensor, b: Tensor, batched: bool) -> Tensor:
    return (_flat(a, batched) * _flat(b, batched)).sum(dim=1)


def _transpose_product(P: Operator, z: Tensor, u: Tensor) -> Tensor:
    """:math:`J_P(z)^\\top u`, differentiable in P's parameters (the graph is kept). Attention runs on the math
    kernel of ``scaled_dot_product_attention``: the fused kernels' backward has no derivative of its own."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    z_in = z.detach().requires_grad_(True)
    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
        (out,) = torch.autograd.grad(P(z_in), z_in, u, create_graph=True)
    return out


class SpectralNorm:
    """:math:`\\|J_P(z)\\|_2` per sample with a warm-started power iteration (see the module docstring).

    Args:
        steps: power steps per call; the last one gives the differentiable estimate (default: 1).
        generator: the random first vector's generator.
    """

    def __init__(self, steps: int = 1, generator: torch.Generator | None = None):
        if steps < 1:
            raise ValueError(f"steps={steps} must be >= 1")
        self.steps, self.generator = steps, generator
        self.v: Tensor | None = None

    def _start(self, z: Tensor, batched: bool) -> Tensor:
        if self.v is not None and self.v.shape == z.shape and self.v.device == z.device:
            return self.v  # warm start: the same graph (or batch shape) as the previous call
        return random_unit(z, batched, self.generator)

    def __call__(self, P: Operator, z: Tensor, batched: bool) -> Tensor:
        """The estimates :math:`\\hat\\sigma`, shape ``(B,)`` (``(1,)`` unbatched), with a graph to P's parameters."""
        z = z.detach()
        v = self._start(z, batched)
        with torch.no_grad():
            vjp_fn = torch.func.vjp(P, z)[1] if self.steps > 1 else None  # J^T at z, for the plain power steps
            for _ in range(self.steps - 1):
                u, _ = _normalise(jvp(P, (z,), (v,))[1], batched)
                v, _ = _normalise(vjp_fn(u)[0], batched)
            u, _ = _normalise(jvp(P, (z,), (v,))[1], batched)  # u = J v / ||J v||
        JTu = _transpose_product(P, z, u)  # with a graph to the parameters
        self.v, _ = _normalise(JTu.detach(), batched)
        return _per_sample_dot(JTu, v, batched)


class FrobeniusNorm:
    """:math:`\\|J_P(z)\\|_F / \\sqrt{n}` per sample by Hutchinson's estimator with ``probes`` Rademacher vectors."""

    def __init__(self, probes: int = 1, generator: torch.Generator | None = None):
        if probes < 1:
            raise ValueError(f"probes={probes} must be >= 1")
        self.probes, self.generator = probes, generator

    def __call__(self, P: Operator, z: Tensor, batched: bool) -> Tensor:
        z = z.detach()
        n = _flat(z, batched).shape[1]
        total = 0.0
        for _ in range(self.probes):
            eps = torch.randint(0, 2, z.shape, generator=self.generator, device="cpu").to(z.device, z.dtype) * 2 - 1
            JTe = _transpose_product(P, z, eps)
            total = total + _per_sample_dot(JTe, JTe, batched)
        return (total / (self.probes * n)).sqrt()


def make_estimator(norm: str, generator: torch.Generator | None = None, steps: int = 1):
    """The estimator of ``norm`` (``spectral`` or ``frobenius``); ``steps`` is power steps or probes per call."""
    if norm == "spectral":
        return SpectralNorm(steps, generator)
    if norm == "frobenius":
        return FrobeniusNorm(steps, generator)
    raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")


def hinge_penalty(estimates: Tensor, weight: float, target: float) -> Tensor:
    r""":math:`\lambda\, \mathrm{mean}_i\, \mathrm{relu}(\sigma_i - k)^2`: zero below the target :math:`k`, quadratic above it."""
    return weight * torch.relu(estimates - target).pow(2).mean()
