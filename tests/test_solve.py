"""Solvers against closed forms: P(z) = A z + b with ||A||_2 < 1 has z* = (I - A)^-1 b."""

import importlib
import math

import pytest
import torch

import fixpt
from fixpt.errors import FixptError

DT = torch.float64
solve_module = importlib.import_module("fixpt.solve")  # the module (fixpt.solve is also the function)


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


@pytest.mark.parametrize("grad", ["unroll", "last", "implicit"])
def test_gradient_of_an_operator_that_does_not_read_z(grad):
    """P(z) = w * x has J = 0 and z* = w * x, so d(sum z*)/dw = x in every gradient mode (the implicit adjoint
    used to fail here: autograd reports z as unused in P's graph)."""
    w = torch.tensor([0.3, -0.5, 2.0], requires_grad=True)
    x = torch.tensor([1.0, 2.0, -3.0])
    sol = fixpt.solve(lambda z: w * x, torch.zeros(3), grad=grad, tol=1e-8, max_iter=20)
    sol.z.sum().backward()
    torch.testing.assert_close(w.grad, x)


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


def spread_spectrum(seed, batch=1, n=20):
    """The symmetric linear map with eigenvalues spread over [0, 0.97]: P(z) = A z + b, z* = (I - A)^-1 b."""
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DT))[0]
    A = Q @ torch.diag(torch.linspace(0, 0.97, n, dtype=DT)) @ Q.T
    b = torch.randn(batch, n, generator=g, dtype=DT)
    return A, b, torch.linalg.solve(torch.eye(n, dtype=DT) - A, b.T).T


@pytest.mark.parametrize("seed", range(5))
def test_limited_memory_broyden_within_the_full_memory_bound(seed):
    """With only 5 pairs, the sliding window reaches 1e-5 within Gay's 2n = 40 steps, the bound of full-memory
    Broyden on a linear map (restarting from -I every 5 pairs took 43-53 steps on these seeds), and the
    answer, solved tighter, is the dense solve's."""
    A, b, z_star = spread_spectrum(seed)
    P = lambda z: z @ A.T + b  # noqa: E731
    sol = fixpt.solve(P, torch.zeros_like(b), method="broyden", alpha=0.0, tol=1e-5, max_iter=500, window=5)
    assert sol.converged and sol.n_iter <= 2 * 20
    tight = fixpt.solve(P, torch.zeros_like(b), method="broyden", alpha=0.0, tol=1e-12, max_iter=500, window=5)
    assert tight.converged and torch.allclose(tight.z, z_star, rtol=0, atol=1e-8)


def test_broyden_memory_is_the_sequence_of_sherman_morrison_updates():
    """The compact form H = -I + (S + Y)(S^T Y + L)^-1 S^T equals H_0 = -I updated by Broyden's rule
    H += (s - H y) s^T H / (s^T H y) with each pair in turn; once the window is full it is the same
    replay of the newest pairs only. A zero pair (s = y = 0) is skipped."""
    g = torch.Generator().manual_seed(0)
    n, window = 6, 3
    pairs = [(torch.randn(1, n, generator=g, dtype=DT), torch.randn(1, n, generator=g, dtype=DT)) for _ in range(5)]

    def replay(pairs):
        H = -torch.eye(n, dtype=DT)
        for s, y in pairs:
            s, y = s[0], y[0]
            H = H + torch.outer(s - H @ y, s @ H) / (s @ H @ y)
        return H

    memory = solve_module._BroydenMemory(torch.zeros(1, n, dtype=DT), window)
    eye = torch.eye(n, dtype=DT)
    for k, (s, y) in enumerate(pairs, start=1):
        memory.add(s, y)
        H = torch.cat([memory.apply(eye[i:i + 1]) for i in range(n)]).T  # columns H e_i
        assert torch.allclose(H, replay(pairs[max(0, k - window):k]), atol=1e-10), k
    memory.add(torch.zeros(1, n, dtype=DT), torch.zeros(1, n, dtype=DT))
    H = torch.cat([memory.apply(eye[i:i + 1]) for i in range(n)]).T
    assert torch.allclose(H, replay(pairs[-2:]), atol=1e-10)


def test_broyden_restarts_a_sample_whose_memory_is_singular():
    """A sample whose fixed point is reached exactly (residual 0: s = y = 0) leaves its pairs unused
    without disturbing the other sample of the batch."""
    A, b, z_star = spread_spectrum(0, batch=2)
    b[1] = 0.0  # z* = 0 = z0: every residual of this sample is exactly 0
    sol = fixpt.solve(lambda z: z @ A.T + b, torch.zeros_like(b), method="broyden", alpha=0.0, tol=1e-12, max_iter=500)
    assert sol.converged and not sol.diverged and torch.equal(sol.z[1], torch.zeros(20, dtype=DT))
    assert torch.allclose(sol.z[0], z_star[0], atol=1e-8)


@pytest.mark.parametrize("case", ["converges", "max_iter", "diverges"])
def test_picard_reading_a_step_late_returns_what_the_synchronous_solve_does(case, monkeypatch):
    """Picard's CUDA schedule (step k+1 queued before step k's test is read), run on the CPU: the same iterate,
    traces, n_iter, flags and callbacks as the synchronous solve; only the discarded step k+1 is counted in n_evals."""
    A, b, _ = linear_problem()
    P = {"converges": lambda z: z @ A.T + b, "max_iter": lambda z: z @ A.T + b,
         "diverges": lambda z: 3.0 * z + 1.0}[case]
    z0 = torch.ones(3, 12) if case == "diverges" else torch.zeros_like(b)
    opts = dict(tol=1e-8 if case == "converges" else 1e-30, max_iter=10_000 if case == "diverges" else 40)
    runs = []
    for late in (False, True):
        monkeypatch.setattr(solve_module, "_reads_late", lambda device, late=late: late)
        seen = []
        sol = fixpt.solve(P, z0, callback=lambda k, z: seen.append((k, z.clone())), **opts)
        runs.append((sol, seen))
    (sync, seen_sync), (late, seen_late) = runs
    assert torch.equal(late.z, sync.z) and (late.n_iter, late.converged, late.diverged) == (sync.n_iter, sync.converged, sync.diverged)
    assert torch.equal(late.abs_trace, sync.abs_trace) and torch.equal(late.rel_trace, sync.rel_trace)
    assert [k for k, _ in seen_late] == [k for k, _ in seen_sync] and all(torch.equal(a, c) for (_, a), (_, c) in zip(seen_late, seen_sync))
    assert sync.n_evals == sync.n_iter
    assert late.n_evals == late.n_iter + (0 if case == "max_iter" else 1)
    assert {"converges": sync.converged, "max_iter": not sync.converged and sync.n_iter == 40,
            "diverges": sync.diverged and torch.isfinite(sync.z).all()}[case]


def test_damped_step_keeps_the_promoted_dtype():
    """The damped step is one lerp when z and P(z) share a dtype, and promotes as a z + (1 - a) P(z) otherwise."""
    sol = fixpt.solve(lambda z: torch.cos(z.double()), torch.zeros(1, 1), alpha=0.5, tol=1e-12, max_iter=200)
    assert sol.z.dtype == torch.float64 and math.isclose(sol.z.item(), 0.7390851332151607, abs_tol=1e-11)


def relu_graph_map(seed=58, nodes=40, width=8, scale=1.5):
    """A GCN-like step z -> relu(A_hat z W) + f on a random graph (A_hat: symmetric-normalised adjacency with
    self-loops); the seed is one where type-II Anderson without a restart stalls (500 iterations short of 1e-8)."""
    g = torch.Generator().manual_seed(seed)
    A = (torch.rand(nodes, nodes, generator=g) < 0.1).to(DT)
    A = ((A + A.T) > 0).to(DT) + torch.eye(nodes, dtype=DT)
    d = A.sum(1) ** -0.5
    A = d[:, None] * A * d[None, :]
    W = torch.randn(width, width, generator=g, dtype=DT) / width ** 0.5 * scale
    f = torch.randn(nodes, width, generator=g, dtype=DT)
    return (lambda z: torch.relu(A @ z @ W) + f), f


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_anderson_restarts_when_the_residual_grows(alpha):
    """On a piecewise-linear map Anderson's mixing can stall; restarting a sample whose residual grew
    reaches Picard's fixed point, in fewer evaluations than Picard."""
    P, f = relu_graph_map()
    pic = fixpt.solve(P, f, alpha=0.0, tol=1e-10, max_iter=3000, batched=False)
    anders = fixpt.solve(P, f, method="anderson", alpha=alpha, tol=1e-8, max_iter=500, batched=False)
    assert pic.converged and anders.converged
    assert anders.n_evals < pic.n_evals / 2
    assert torch.allclose(anders.z, pic.z, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_picard_on_cuda_reads_its_test_a_step_late():
    """On CUDA the test of step k is copied to pinned memory and read while step k+1 runs: the same solve as
    the synchronous one on the CPU, one more evaluation."""
    A, b, _ = linear_problem()
    cpu = fixpt.solve(lambda z: z @ A.T + b, torch.zeros_like(b), tol=1e-9, max_iter=500)
    Ag, bg = A.cuda(), b.cuda()
    gpu = fixpt.solve(lambda z: z @ Ag.T + bg, torch.zeros_like(bg), tol=1e-9, max_iter=500)
    assert cpu.converged and gpu.converged and gpu.n_iter == cpu.n_iter and gpu.n_evals == gpu.n_iter + 1
    assert torch.allclose(gpu.z.cpu(), cpu.z, atol=1e-12) and torch.allclose(gpu.rel_trace, cpu.rel_trace, rtol=1e-9)


def test_anderson_with_a_sample_already_at_its_fixed_point():
    """A zero sample of a linear map is its own fixed point: every residual of it is 0, and the mixing system
    must still be solvable (it was 0 * lam on the diagonal: NaN)."""
    W = torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.1
    z0 = torch.zeros(2, 4, dtype=torch.float64)
    z0[0] = 1.0
    sol = fixpt.solve(lambda z: z @ W.T + z0, z0, method="anderson", alpha=0.0, tol=1e-10, max_iter=50)
    assert sol.converged and not sol.diverged
    exact = torch.linalg.solve(torch.eye(4, dtype=torch.float64) - W, z0.T).T
    torch.testing.assert_close(sol.z, exact, rtol=0, atol=1e-9)
