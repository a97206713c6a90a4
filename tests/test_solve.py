"""Solvers against closed forms: P(z) = A z + b with ||A||_2 < 1 has z* = (I - A)^-1 b."""

import math

import pytest
import torch

import fixpt
from fixpt.errors import FixptError

DT = torch.float64


def linear_problem(n=12, batch=3, norm=0.8, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g, dtype=DT)
    A = norm * A / torch.linalg.matrix_norm(A, ord=2)
    b = torch.randn(batch, n, generator=g, dtype=DT)
    z_star = torch.linalg.solve(torch.eye(n, dtype=DT) - A, b.T).T
    return A.to(device), b.to(device), z_star.to(device)


@pytest.mark.parametrize("method", ["picard", "anderson", "broyden"])
@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_converges_to_closed_form(method, alpha, device):
    A, b, z_star = linear_problem(device=device)
    sol = fixpt.solve(lambda z: z @ A.T + b, torch.zeros_like(b), method=method, alpha=alpha, tol=1e-11, max_iter=1000)
    assert sol.converged and not sol.diverged
    assert torch.allclose(sol.z, z_star, atol=1e-9)
    assert sol.abs_trace.shape == sol.rel_trace.shape == (sol.n_iter, 3)
    # stopping rule: the last relative residual is within tol, the one before is not
    assert (sol.rel_trace[-1] <= 1e-11).all() and (sol.rel_trace[-2] > 1e-11).any()
    # the relative residual is the absolute one over the size of the new iterate
    assert torch.allclose(sol.rel_trace[-1], sol.abs_trace[-1] / sol.z.norm(dim=1).cpu(), rtol=1e-9)


def test_picard_residuals_follow_the_contraction_rate():
    """For Picard on a linear map the residual contracts exactly: r_{k+1} = ||A r_k|| <= ||A|| r_k."""
    A, b, _ = linear_problem(batch=1, norm=0.6)
    sol = fixpt.solve(lambda z: z @ A.T + b, torch.zeros_like(b), alpha=0.0, tol=1e-12, max_iter=200)
    ratios = sol.abs_trace[1:, 0] / sol.abs_trace[:-1, 0]
    assert (ratios <= 0.6 + 1e-9).all()


def test_cos_fixed_point_and_max_iter():
    sol = fixpt.solve(torch.cos, torch.zeros(1, 1, dtype=DT), alpha=0.0, tol=1e-12, max_iter=200)
    assert math.isclose(sol.z.item(), 0.7390851332151607, abs_tol=1e-11)
    short = fixpt.solve(torch.cos, torch.zeros(1, 1, dtype=DT), alpha=0.0, tol=1e-12, max_iter=3)
    assert short.n_iter == 3 and not short.converged


def test_per_sample_traces_and_unbatched_mode():
    A, b, _ = linear_problem(batch=2)
    b[1] = 1000 * b[0]  # the same sample scaled: absolute residuals scale, relative ones do not
    sol = fixpt.solve(lambda z: z @ A.T + b, torch.zeros_like(b), tol=1e-8, max_iter=300)
    assert torch.allclose(sol.abs_trace[:, 1], 1000 * sol.abs_trace[:, 0], rtol=1e-6)
    assert torch.allclose(sol.rel_trace[:, 1], sol.rel_trace[:, 0], rtol=1e-6)
    one = fixpt.solve(lambda z: z @ A.T + b, torch.zeros_like(b), tol=1e-8, max_iter=300, batched=False)
    assert one.abs_trace.shape[1] == 1


def test_non_finite_stops_and_is_reported():
    P = lambda z: 3.0 * z + 1.0  # noqa: E731  (expanding: overflows float32)
    sol = fixpt.solve(P, torch.ones(2, 4), alpha=0.0, tol=1e-6, max_iter=10_000)
    assert sol.diverged and not sol.converged
    assert torch.isfinite(sol.z).all() and sol.n_iter < 10_000
    nan = fixpt.solve(lambda z: z * float("nan"), torch.ones(1, 2), max_iter=5)
    assert nan.diverged and nan.n_iter == 1 and torch.equal(nan.z, torch.ones(1, 2))


def test_callback_sees_every_iterate():
    A, b, _ = linear_problem(batch=1)
    seen = []
    sol = fixpt.solve(lambda z: z @ A.T + b, torch.zeros_like(b), tol=1e-6, callback=lambda k, z: seen.append((k, z.clone())))
    assert [k for k, _ in seen] == list(range(1, sol.n_iter + 1))
    assert torch.equal(seen[-1][1], sol.z)


def test_anderson_needs_fewer_evaluations():
    g = torch.Generator().manual_seed(1)
    W = torch.randn(30, 30, generator=g, dtype=DT)
    W = 0.95 * W / torch.linalg.matrix_norm(W, ord=2)
    b = torch.randn(4, 30, generator=g, dtype=DT)
    P = lambda z: torch.tanh(z @ W.T) + b  # noqa: E731
    pic = fixpt.solve(P, torch.zeros_like(b), method="picard", tol=1e-9, max_iter=2000)
    anders = fixpt.solve(P, torch.zeros_like(b), method="anderson", tol=1e-9, max_iter=2000)
    assert pic.converged and anders.converged
    assert torch.allclose(pic.z, anders.z, atol=1e-7)
    assert anders.n_evals < 0.6 * pic.n_evals


@pytest.mark.parametrize("method", ["picard", "anderson", "broyden"])
def test_gradient_modes_against_closed_form(method, device):
    r"""L = <w, z*>: dL/db = (I - A)^{-T} w and dL/dA = (I - A)^{-T} w z*^T exactly (unroll,
    implicit); the one-step gradient of ``last`` is dL/db = w, dL/dA = w z*^T."""
    A, b, z_star = linear_problem(device=device)
    w = torch.randn(b.shape, dtype=DT, generator=torch.Generator().manual_seed(5)).to(device)
    n = A.shape[0]
    y = torch.linalg.solve((torch.eye(n, dtype=DT, device=device) - A).T, w.T).T  # adjoint per sample
    exact = {"b": y, "A": y.T @ z_star}
    jfb = {"b": w, "A": w.T @ z_star}
    for grad, expect in (("unroll", exact), ("implicit", exact), ("last", jfb)):
        A_, b_ = A.clone().requires_grad_(), b.clone().requires_grad_()
        sol = fixpt.solve(lambda z: z @ A_.T + b_, torch.zeros_like(b), method=method, grad=grad, alpha=0.3,
                          tol=1e-12, max_iter=2000)
        (sol.z * w).sum().backward()
        assert torch.allclose(b_.grad, expect["b"], atol=1e-8), grad
        assert torch.allclose(A_.grad, expect["A"], atol=1e-8), grad
    assert not torch.allclose(exact["b"], jfb["b"], atol=1e-2)  # the two closed forms really differ


def test_implicit_backward_reports_its_solve():
    A, b, _ = linear_problem()
    b_ = b.clone().requires_grad_()
    sol = fixpt.solve(lambda z: z @ A.T + b_, torch.zeros_like(b), grad="implicit", tol=1e-10, max_iter=500)
    sol.z.sum().backward()
    assert sol.info["backward"]["converged"] and sol.info["backward"]["n_iter"] > 1


def saved_bytes(grad, W, b, max_iter):
    """Bytes autograd saves for the backward pass of one solve."""
    total = []

    def pack(t):
        total.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        sol = fixpt.solve(lambda z: torch.tanh(z @ W.T) + b, torch.zeros_like(b), grad=grad, tol=0.0, max_iter=max_iter)
    assert sol.n_iter == max_iter
    return sum(total)


@pytest.mark.parametrize("grad", ["last", "implicit"])
def test_last_and_implicit_save_no_activations_per_iteration(grad):
    """Memory flat in the iteration count: autograd saves the same tensors for 2 and 40 iterations,
    while unrolling saves activations for every iteration."""
    A, b, _ = linear_problem()
    W = A.clone().requires_grad_()
    assert saved_bytes(grad, W, b, 40) == saved_bytes(grad, W, b, 2) > 0
    assert saved_bytes("unroll", W, b, 40) > 10 * saved_bytes("unroll", W, b, 2)


@pytest.mark.parametrize("bad", [dict(method="newton"), dict(grad="exact"), dict(alpha=1.0), dict(stop_mode="l1")])
def test_bad_options_name_the_valid_ones(bad):
    with pytest.raises(FixptError, match="valid|outside"):
        fixpt.solve(torch.cos, torch.zeros(1, 1), **bad)


@pytest.mark.parametrize("method", ["picard", "anderson", "broyden"])
def test_unbatched_matrix_iterate(method):
    """A graph-like (nodes, features) iterate solved as one sample keeps its shape."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(5, 5, generator=g, dtype=DT)
    A = 0.5 * A / torch.linalg.matrix_norm(A, ord=2)
    F = torch.randn(5, 3, generator=g, dtype=DT)
    sol = fixpt.solve(lambda Z: A @ Z + F, torch.zeros(5, 3, dtype=DT), method=method, tol=1e-12, max_iter=500, batched=False)
    assert sol.z.shape == (5, 3) and sol.abs_trace.shape[1] == 1
    assert torch.allclose(sol.z, torch.linalg.solve(torch.eye(5, dtype=DT) - A, F), atol=1e-10)


def test_broyden_on_a_spread_spectrum_beats_picard():
    """The symmetric linear map with eigenvalues spread over [0, 0.97] (n = 20): Picard needs about
    log(tol) / log(0.97) steps; Broyden with full memory terminates in at most 2n (Gay, 1979)."""
    g = torch.Generator().manual_seed(3)
    Q = torch.linalg.qr(torch.randn(20, 20, generator=g, dtype=DT))[0]
    A = Q @ torch.diag(torch.linspace(0, 0.97, 20, dtype=DT)) @ Q.T
    b = torch.randn(2, 20, generator=g, dtype=DT)
    z_star = torch.linalg.solve(torch.eye(20, dtype=DT) - A, b.T).T
    P = lambda z: z @ A.T + b  # noqa: E731
    pic = fixpt.solve(P, torch.zeros_like(b), method="picard", alpha=0.0, tol=1e-10, max_iter=5000)
    bro = fixpt.solve(P, torch.zeros_like(b), method="broyden", alpha=0.0, tol=1e-10, max_iter=5000, window=40)
    assert pic.converged and bro.converged and torch.allclose(bro.z, z_star, atol=1e-8)
    assert bro.n_iter <= 2 * 20 + 5 and bro.n_iter < pic.n_iter / 10  # 2n in exact arithmetic; rounding adds a few
    short = fixpt.solve(P, torch.zeros_like(b), method="broyden", alpha=0.0, tol=1e-10, max_iter=5000, window=5)
    assert short.converged and torch.allclose(short.z, z_star, atol=1e-8)  # limited memory converges too, in more steps
