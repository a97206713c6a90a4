"""fixpt.DEQ, the wrapper of a user's step module, against closed forms.

A linear step T(z, u) = W z + u with ||W||_2 < 1 has the fixed point z* = (I - W)^{-1} u, so for the
loss L = sum(c * z*) the exact gradients are dL/du = (I - W)^{-T} c and dL/dW = (I - W)^{-T} c z*^T
(summed over the samples), and the one-step ("last") gradient is dL/dW = c z*^T, dL/du = c. Its
Jacobian is W, so ||J||_2 = sigma_max(W) and rho(J) = max |eig(W)|.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import fixpt
from fixpt.errors import DivergenceError, FixptError

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "deq_wrapper.py"
N, B = 6, 4


class LinearStep(nn.Module):
    """T(z, u) = W z + u (rows of z are samples), with its exact Lipschitz constant as the certificate."""

    def __init__(self, W: torch.Tensor):
        super().__init__()
        self.W = nn.Parameter(W.clone())

    def forward(self, z, u):
        return z @ self.W.T + u

    def certified_lipschitz(self):
        return float(torch.linalg.matrix_norm(self.W.detach(), ord=2)) * (1 + 1e-9), "||W||_2"


def random_W(norm: float, seed: int = 0) -> torch.Tensor:
    W = torch.randn(N, N, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return norm * W / torch.linalg.matrix_norm(W, ord=2)


def inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, dtype=torch.float64, generator=g), torch.randn(B, N, dtype=torch.float64, generator=g)


@pytest.mark.parametrize("method", ["picard", "anderson", "broyden"])
def test_the_fixed_point_is_the_dense_solve(method):
    W = random_W(0.7)
    x, _ = inputs()
    layer = fixpt.DEQ(LinearStep(W), method=method, alpha=0.3, tol=1e-12, max_iter=400)
    z = layer(x)
    exact = torch.linalg.solve(torch.eye(N, dtype=torch.float64) - W, x.T).T
    torch.testing.assert_close(z, exact, rtol=1e-9, atol=1e-10)
    assert layer.last_solution.converged and layer.last_solution.n_iter > 1


def _grads(grad: str, W: torch.Tensor, x: torch.Tensor, c: torch.Tensor):
    step = LinearStep(W)
    u = x.clone().requires_grad_(True)
    layer = fixpt.DEQ(step, alpha=0.2, tol=1e-13, max_iter=500, grad=grad, backward_tol=1e-13, backward_max_iter=1000)
    (layer(u) * c).sum().backward()
    return step.W.grad, u.grad


@pytest.mark.parametrize("grad", ["implicit", "unroll"])
def test_exact_gradients_equal_the_dense_solve_gradient(grad):
    W = random_W(0.6)
    x, c = inputs()
    A = torch.eye(N, dtype=torch.float64) - W
    z = torch.linalg.solve(A, x.T).T
    adjoint = torch.linalg.solve(A.T, c.T).T  # rows: (I - W)^{-T} c_b
    gW, gu = _grads(grad, W, x, c)
    torch.testing.assert_close(gu, adjoint, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(gW, adjoint.T @ z, rtol=1e-8, atol=1e-10)


def test_last_mode_is_the_one_step_gradient():
    W = random_W(0.6)
    x, c = inputs()
    z = torch.linalg.solve(torch.eye(N, dtype=torch.float64) - W, x.T).T
    gW, gu = _grads("last", W, x, c)
    torch.testing.assert_close(gu, c, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gW, c.T @ z, rtol=1e-8, atol=1e-10)


def test_implicit_gradient_of_a_nonlinear_step_matches_finite_differences():
    """T(z, u) = tanh(W z + u) with an encoder and decoder: gradcheck (central differences) through the whole layer."""
    torch.manual_seed(0)
    W = random_W(0.8, seed=3)

    class Tanh(LinearStep):
        def forward(self, z, u):
            return torch.tanh(z @ self.W.T + u)

    layer = fixpt.DEQ(Tanh(W), encoder=nn.Linear(3, N).double(), decoder=nn.Linear(N, 2).double(), method="picard",
                      alpha=0.0, tol=1e-13, max_iter=300, backward_tol=1e-13, backward_max_iter=600)
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: layer(inp), (x,), eps=1e-6, atol=1e-6, rtol=1e-5, check_undefined_grad=False)


def test_contraction_reports_the_norm_and_radius_of_W():
    W = random_W(0.75, seed=5)
    x, _ = inputs()
    layer = fixpt.DEQ(LinearStep(W), alpha=0.5, tol=1e-10, max_iter=200)
    report = layer.contraction(x, points=3, iters=200)
    sigma, rho = float(torch.linalg.matrix_norm(W, ord=2)), float(torch.linalg.eigvals(W).abs().max())
    assert max(report.local_norms) == pytest.approx(sigma, rel=1e-4)  # J = W at every point, per sample
    assert report.spectral_radius == pytest.approx(rho, rel=1e-6)  # the block-diagonal J has W's eigenvalues
    assert report.empirical_ratio <= sigma * (1 + 1e-9)  # a lower bound on Lip(P)
    assert report.certified_bound == pytest.approx(sigma) and report.verdict == "certified"
    assert report.bounds["factor"] == pytest.approx(0.5 + 0.5 * report.certified_bound)


def test_a_step_without_a_certificate_says_so():
    class Plain(nn.Module):
        def forward(self, z, u):
            return 0.5 * torch.tanh(z) + u

    report = fixpt.DEQ(Plain()).contraction(torch.randn(3, 4), points=2, iters=50)
    assert report.certified_bound is None and "no certified bound" in report.certified_reason
    assert report.verdict == "empirical" and max(report.local_norms) <= 0.5 + 1e-6


def test_forward_overrides_and_encoder_decoder():
    W = random_W(0.5).float()
    enc, dec = nn.Linear(3, N), nn.Linear(N, 1)
    layer = fixpt.DEQ(LinearStep(W), encoder=enc, decoder=dec, tol=1e-7, max_iter=100)
    x = torch.randn(5, 3)
    with torch.no_grad():
        exact = dec(torch.linalg.solve(torch.eye(N) - W, enc(x).T).T)
        torch.testing.assert_close(layer(x), exact, rtol=1e-5, atol=1e-5)
        layer(x, max_iter=2)
    assert layer.last_solution.n_iter == 2 and not layer.last_solution.converged


def test_bad_arguments_and_divergence_are_one_line_errors():
    step = LinearStep(random_W(0.5))
    with pytest.raises(FixptError, match="method must be one of picard"):
        fixpt.DEQ(step, method="newton")
    with pytest.raises(FixptError, match="0 <= alpha < 1"):
        fixpt.DEQ(step, alpha=1.0)
    with pytest.raises(FixptError, match="unknown solver option"):
        fixpt.DEQ(step, max_iters=3)
    with pytest.raises(FixptError, match="must keep the shape of z"):
        fixpt.DEQ(lambda z, u: torch.cat([z, u], 1))(torch.randn(2, 3))
    diverging = fixpt.DEQ(LinearStep(random_W(3.0).float()), alpha=0.0, tol=0.0, max_iter=200, grad="unroll")
    with pytest.raises(DivergenceError, match="non-finite"):
        diverging(torch.randn(2, N))


def test_the_worked_example_runs():
    """docs/examples/deq_wrapper.py: wraps a user module, trains it, checks it (exit 0 only when every check passes)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "converged=True" in res.stdout and "-> certified" in res.stdout and "checks: all passed" in res.stdout
