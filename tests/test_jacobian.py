"""The Frechet-derivative penalty's estimates against dense Jacobians (svdvals, finite differences)."""

import math

import pytest
import torch

from fixpt.jacobian import FrobeniusNorm, SpectralNorm, hinge_penalty, make_estimator


def tanh_map(W: torch.Tensor, b: torch.Tensor):
    """P(z) = tanh(z W^T + b), row by row: J = diag(1 - tanh^2(W z + b)) W per sample."""
    return lambda z: torch.tanh(z @ W.T + b)


def dense_jacobian(W, b, z_row):
    s = 1 - torch.tanh(W @ z_row + b) ** 2
    return s[:, None] * W


def problem(n=6, seed=0, batch=1):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(n, n, generator=g, dtype=torch.float64) / math.sqrt(n) * 1.5
    b = torch.randn(n, generator=g, dtype=torch.float64) * 0.1
    z = torch.randn(batch, n, generator=g, dtype=torch.float64)
    return W, b, z


def converged(estimator, P, z, batched, calls=300):
    """Call the warm-started estimator until its estimate stops changing (power iteration converged)."""
    before = None
    for _ in range(calls):
        sigma = estimator(P, z, batched)
        if before is not None and (sigma.detach() - before).abs().max() <= 1e-14:
            break
        before = sigma.detach()
    return sigma


def test_warm_started_power_iteration_agrees_with_svdvals():
    W, b, z = problem()
    sigma = converged(SpectralNorm(steps=1, generator=torch.Generator().manual_seed(1)), tanh_map(W, b), z, batched=False)
    exact = torch.linalg.svdvals(dense_jacobian(W, b, z[0]))[0]
    assert sigma.shape == (1,)
    assert abs(float(sigma.detach()[0]) - float(exact)) <= 1e-3 * float(exact)


def test_batched_estimates_are_per_sample():
    W, b, z = problem(batch=3, seed=2)
    sigma = converged(SpectralNorm(steps=2, generator=torch.Generator().manual_seed(0)), tanh_map(W, b), z, batched=True)
    exact = torch.stack([torch.linalg.svdvals(dense_jacobian(W, b, z[i]))[0] for i in range(3)])
    torch.testing.assert_close(sigma.detach(), exact, rtol=1e-3, atol=0)


def test_spectral_penalty_gradient_matches_finite_differences():
    """d sigma_max(J(W)) / dW at fixed z: autograd through the estimate against central differences of svdvals."""
    W, b, z = problem(seed=3)
    W = W.clone().requires_grad_(True)
    est = SpectralNorm(steps=1, generator=torch.Generator().manual_seed(0))
    converged(est, tanh_map(W.detach(), b), z, batched=False)  # v converged to the top right singular vector
    sigma = est(tanh_map(W, b), z, batched=False)[0]
    (grad,) = torch.autograd.grad(sigma, W)
    h = 1e-6
    fd = torch.zeros_like(W)
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            E = torch.zeros_like(W)
            E[i, j] = h
            plus = torch.linalg.svdvals(dense_jacobian(W.detach() + E, b, z[0]))[0]
            minus = torch.linalg.svdvals(dense_jacobian(W.detach() - E, b, z[0]))[0]
            fd[i, j] = (plus - minus) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-7)


def test_gradient_does_not_flow_into_the_point():
    W, b, z = problem(seed=4)
    z = z.clone().requires_grad_(True)
    sigma = SpectralNorm()(tanh_map(W, b), z, batched=False)
    assert not torch.autograd.grad(sigma.sum(), z, allow_unused=True, materialize_grads=True)[0].any()


def test_hutchinson_is_exact_on_a_diagonal_jacobian():
    """Rademacher probes have eps_i^2 = 1, so one probe gives ||J||_F^2 exactly when J is diagonal."""
    d = torch.tensor([0.5, -2.0, 3.0, 0.1], dtype=torch.float64)
    est = FrobeniusNorm(probes=1, generator=torch.Generator().manual_seed(0))
    value = est(lambda z: z * d, torch.randn(2, 4, dtype=torch.float64), batched=True)
    torch.testing.assert_close(value, torch.full((2,), float(d.norm() / 2), dtype=torch.float64))


def test_hutchinson_mean_over_many_probes():
    W, b, z = problem(n=8, seed=5)
    est = FrobeniusNorm(probes=1500, generator=torch.Generator().manual_seed(0))
    value = float(est(tanh_map(W, b), z, batched=False).detach()[0])
    exact = float(torch.linalg.matrix_norm(dense_jacobian(W, b, z[0])) / math.sqrt(8))
    assert abs(value - exact) < 0.03 * exact  # the relative std of 1500 probes is about 1 % here


def test_hinge_penalty_is_zero_below_the_target_and_quadratic_above():
    s = torch.tensor([0.5, 0.8, 1.2, 2.0], requires_grad=True)
    value = hinge_penalty(s, 3.0, 1.0)
    assert float(value.detach()) == pytest.approx(3.0 * (0.2**2 + 1.0**2) / 4)
    (g,) = torch.autograd.grad(value, s)
    torch.testing.assert_close(g, torch.tensor([0.0, 0.0, 3.0 * 2 * 0.2 / 4, 3.0 * 2 * 1.0 / 4]))


def test_unknown_norm_and_bad_steps():
    with pytest.raises(ValueError, match="unknown norm"):
        make_estimator("nuclear")
    with pytest.raises(ValueError, match="steps"):
        SpectralNorm(steps=0)
