"""Contraction diagnostics against SVD / eigenvalues, and certified bounds against observations."""

import math

import pytest
import torch
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import erdos_renyi_graph, to_dense_adj

import fixpt
from fixpt.models.blocks import block_lipschitz_bound, make_block, mean_aggregation_norm_bound

DT = torch.float64


@pytest.mark.parametrize("seed", range(5))
def test_power_iteration_matches_svd(seed, device):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(30, 30, generator=g, dtype=DT).to(device)
    b = torch.randn(1, 30, generator=g, dtype=DT).to(device)
    P = lambda z: z @ A.T + b  # noqa: E731
    est = fixpt.lipschitz(P, torch.zeros(1, 30, dtype=DT, device=device), iters=2000, tol=1e-12, generator=g)
    true = torch.linalg.svdvals(A)[0]
    assert abs(float(est) - float(true)) <= 1e-3 * float(true)


def test_power_iteration_on_a_nonlinear_jacobian():
    """tanh(Wz): J = diag(1 - tanh^2(Wz)) W, its norm from a dense Jacobian's SVD."""
    g = torch.Generator().manual_seed(3)
    W = torch.randn(25, 25, generator=g, dtype=DT)
    z = torch.randn(25, generator=g, dtype=DT)
    P = lambda x: torch.tanh(W @ x)  # noqa: E731
    J = torch.autograd.functional.jacobian(P, z)
    est = fixpt.lipschitz(P, z, iters=2000, tol=1e-12, generator=g)
    assert math.isclose(float(est), float(torch.linalg.svdvals(J)[0]), rel_tol=1e-3)


def test_batched_norms_are_per_sample():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(10, 10, generator=g, dtype=DT)
    scale = torch.tensor([[1.0], [3.0]], dtype=DT)
    P = lambda z: scale * (z @ A.T)  # noqa: E731  sample 1's Jacobian is 3x sample 0's
    est = fixpt.lipschitz(P, torch.ones(2, 10, dtype=DT), iters=2000, tol=1e-12, batched=True, generator=g)
    true = torch.linalg.svdvals(A)[0]
    assert torch.allclose(est, torch.stack([true, 3 * true]), rtol=1e-3)


@pytest.mark.parametrize("seed", range(4))
def test_spectral_radius_matches_eigenvalues(seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(20, 20, generator=g, dtype=DT) / 5
    rho = fixpt.spectral_radius(lambda z: z @ A.T, torch.zeros(1, 20, dtype=DT), generator=g)
    true = torch.linalg.eigvals(A).abs().max()
    assert math.isclose(rho, float(true), rel_tol=1e-6)
    assert rho <= float(torch.linalg.svdvals(A)[0]) + 1e-9  # rho <= ||A||_2


def test_empirical_ratio_is_a_lower_bound_and_tight_for_linear_maps():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(8, 8, generator=g, dtype=DT)
    pts = [torch.randn(1, 8, generator=g, dtype=DT) for _ in range(6)]
    r = fixpt.empirical_ratio(lambda z: z @ A.T, pts, generator=g)
    assert 0 < r <= float(torch.linalg.svdvals(A)[0]) + 1e-12
    # along the top right singular vector the ratio is exact
    _, _, Vh = torch.linalg.svd(A)
    r_top = fixpt.empirical_ratio(lambda z: z @ A.T, [torch.zeros(1, 8, dtype=DT), Vh[:1]], n_random=0)
    assert math.isclose(r_top, float(torch.linalg.svdvals(A)[0]), rel_tol=1e-12)


def test_banach_bounds_hold_along_a_linear_iteration():
    g = torch.Generator().manual_seed(2)
    A = torch.randn(10, 10, generator=g, dtype=DT)
    k = 0.7
    A = k * A / torch.linalg.matrix_norm(A, ord=2)
    b = torch.randn(10, generator=g, dtype=DT)
    z_star = torch.linalg.solve(torch.eye(10, dtype=DT) - A, b)
    zs = [torch.zeros(10, dtype=DT)]
    for _ in range(15):
        zs.append(A @ zs[-1] + b)
    first = float((zs[1] - zs[0]).norm())
    for n in range(1, 16):
        err = float((zs[n] - z_star).norm())
        assert err <= fixpt.a_priori_bound(k, n, first) + 1e-12
        assert err <= fixpt.a_posteriori_bound(k, float((zs[n] - zs[n - 1]).norm())) + 1e-12
    assert fixpt.a_priori_bound(1.0, 3, 1.0) == math.inf


def test_symmetric_propagation_has_norm_one_and_mean_bound_holds():
    ei = erdos_renyi_graph(40, 0.1, directed=False)
    n = 40
    ei_n, w = gcn_norm(ei, None, n, add_self_loops=True)
    A_hat = to_dense_adj(ei_n, edge_attr=w, max_num_nodes=n)[0]
    assert math.isclose(float(torch.linalg.matrix_norm(A_hat.double(), ord=2)), 1.0, rel_tol=1e-5)
    A = to_dense_adj(ei, max_num_nodes=n)[0].double()
    M = (A / A.sum(1, keepdim=True).clamp_min(1)).T  # messages src -> dst: row i of M^T averages i's sources
    assert float(torch.linalg.matrix_norm(M, ord=2)) <= mean_aggregation_norm_bound(ei, n)


@pytest.mark.parametrize("backbone,contractive", [("gcn", False), ("gcn", True), ("sage", False), ("sage", True)])
def test_certified_bound_is_never_below_observed_ratios(backbone, contractive):
    torch.manual_seed(0)
    n, d = 50, 16
    ei = erdos_renyi_graph(n, 0.1, directed=False)
    conv = make_block(backbone, d, contractive=contractive, gamma=0.8)
    with torch.no_grad():  # make the weights large so the bound is tested where it matters
        for p in conv.parameters():
            p.mul_(3.0)
    T = lambda z: torch.relu(conv(z, ei))  # noqa: E731
    bound, why = block_lipschitz_bound(conv, ei, n)
    assert bound is not None, why
    pts = [torch.randn(n, d) for _ in range(6)]
    local = max(float(fixpt.lipschitz(T, p, iters=300)) for p in pts)
    ratio = fixpt.empirical_ratio(T, pts)
    assert ratio <= bound and local <= bound * (1 + 1e-4)
    if contractive:
        assert bound <= 0.8 * (1 + 1e-4)


def test_gat_has_no_certified_bound():
    conv = make_block("gat", 16, heads=4)
    bound, why = block_lipschitz_bound(conv, torch.tensor([[0, 1], [1, 0]]), 2)
    assert bound is None and "attention" in why
