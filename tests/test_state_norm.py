"""The degree norm ||D^1/2 z||_2 (--state-norm degree): estimates against dense Jacobians and closed forms,
its certificate against observations, and the penalty and check-contraction using it."""

from __future__ import annotations

import json

import pytest
import torch
from torch_geometric.utils import erdos_renyi_graph, to_dense_adj

import fixpt
from fixpt.contraction import conjugate
from fixpt.errors import FixptError
from fixpt.models.blocks import block_lipschitz_bound, make_block, node_degree
from fixpt.train import train
from fixpt.training.build import load_trained

from cli_checks import one_line_error, run as cli

GRAPH = {"dataset": "csbm", "csbm_nodes": 150, "csbm_features": 16, "csbm_degree": 6}
PIGN = {"backbone": "sage", "hidden": 16, "max_iter": 6}


def star_and_path(n_leaves: int = 30) -> tuple[torch.Tensor, int]:
    """An undirected graph with a hub of ``n_leaves`` leaves and a path: ||D^-1 A||_2 grows like sqrt(n_leaves)."""
    edges = [(0, i) for i in range(1, n_leaves + 1)] + [(n_leaves + i, n_leaves + i + 1) for i in range(1, 8)]
    ei = torch.tensor(edges).T
    return torch.cat([ei, ei.flip(0)], 1), n_leaves + 9


def mean_aggregation(ei: torch.Tensor, n: int) -> torch.Tensor:
    """Dense M = D^-1 A with messages source -> target (row i averages the sources of edges into i)."""
    A = to_dense_adj(ei, max_num_nodes=n)[0].T.double()  # A[i, j] = 1 for an edge j -> i
    return A / A.sum(1, keepdim=True).clamp_min(1)


def test_conjugate_measures_mean_aggregation_in_the_degree_norm_where_its_norm_is_one():
    ei, n = star_and_path()
    M = mean_aggregation(ei, n)
    P = lambda z: M @ z  # noqa: E731
    s = node_degree(ei, n).double().sqrt()[:, None]
    z = torch.randn(n, 1, dtype=torch.float64)
    l2 = float(fixpt.lipschitz(P, z, iters=500, tol=1e-10))
    weighted = float(fixpt.lipschitz(conjugate(P, s), s * z, iters=500, tol=1e-10))
    assert l2 == pytest.approx(float(torch.linalg.matrix_norm(M, ord=2)), rel=1e-4)
    assert l2 > 3.0  # the hub: the Euclidean norm is far above 1 (sqrt(15.5) for 30 leaves)
    S = torch.diag(s[:, 0])
    assert weighted == pytest.approx(float(torch.linalg.matrix_norm(S @ M @ torch.linalg.inv(S), ord=2)), rel=1e-4)
    assert weighted == pytest.approx(1.0, rel=1e-4)  # D^-1/2 A D^-1/2 of an undirected graph: Perron value 1


def test_degree_certificate_holds_on_a_sage_block_and_refuses_directed_graphs():
    torch.manual_seed(0)
    n, d = 50, 8
    ei = erdos_renyi_graph(n, 0.1, directed=False)
    conv = make_block("sage", d)
    with torch.no_grad():
        for p in conv.parameters():
            p.mul_(3.0)
    bound, why = block_lipschitz_bound(conv, ei, n, "degree")
    assert bound is not None, why
    s = node_degree(ei, n).sqrt()[:, None]
    T_S = conjugate(lambda z: torch.relu(conv(z, ei)), s)
    local = max(float(fixpt.lipschitz(T_S, s * torch.randn(n, d), iters=300)) for _ in range(4))
    assert 0.3 * bound < local <= bound * (1 + 1e-4)
    l2_bound, _ = block_lipschitz_bound(conv, ei, n)
    assert bound < l2_bound  # the point of the norm: mean aggregation costs ||W_l|| here, sqrt(max col sum) ||W_l|| in l2
    directed = erdos_renyi_graph(n, 0.1, directed=True)
    assert block_lipschitz_bound(conv, directed, n, "degree")[0] is None
    assert block_lipschitz_bound(make_block("gcn", d), ei, n, "degree")[0] is None


def dense_local_norm(model, data, scale) -> float:
    """||S J_P(z*) S^-1||_2 from the dense Jacobian (jacrev) and its singular values."""
    model.eval()
    with torch.no_grad():
        model(data)
    z = model.last_solution.z
    _, P = model.operator(data)
    J = torch.func.jacrev(lambda v: P(v.reshape(z.shape)).reshape(-1))(z.reshape(-1)).double()
    s = scale.double().expand_as(z).reshape(-1)
    return float(torch.linalg.matrix_norm(s[:, None] * J.detach() / s[None, :], ord=2))


def test_penalty_in_the_degree_norm_brings_the_checked_norm_under_target(tmp_path):
    out = tmp_path / "deg"
    metrics = train("pign", PIGN, GRAPH, {"epochs": 40, "lr": 0.02, "seed": 0, "jac_penalty": 10.0, "jac_target": 0.5,
                                          "jac_steps": 2, "state_norm": "degree"}, out=out, device="cpu")
    assert metrics["jac_state_norm"] == "degree"
    trained = load_trained(out / "ckpt.pt", device="cpu")
    scale = trained.model.state_scale(trained.data, "degree")
    dense = dense_local_norm(trained.model, trained.data, scale)
    assert metrics["jac_norm_end"] == pytest.approx(dense, rel=1e-3)  # the recorded norm is the degree norm
    assert dense < 0.6
    # check-contraction measures the same quantity, along the trajectory that ends at that fixed point
    res = cli("check-contraction", out / "ckpt.pt", "--state-norm", "degree", "--samples", "40", "--json")
    report = json.loads(res.stdout)
    assert report["state_norm"] == "degree"
    assert report["local_norm"]["min"] <= dense * (1 + 1e-3) <= report["local_norm"]["max"] * (1 + 1e-3)
    assert res.exit_code == 0 and report["verdict"] in ("empirical", "certified")


def test_the_penalty_takes_J_at_the_evaluation_solution(tmp_path):
    """--jac-at eval: the point is the evaluation-mode solve of the batch, not the training pass's solution
    (--jac-at train, the default; input dropout moves the free term there)."""
    from fixpt.training.penalty import JacobianPenalty

    out = tmp_path / "plain"
    train("pign", {**PIGN, "dropout": 0.5}, GRAPH, {"epochs": 3, "seed": 0}, out=out, device="cpu")
    trained = load_trained(out / "ckpt.pt", device="cpu")
    model, data = trained.model, trained.data
    model.eval()
    with torch.no_grad():
        model(data)
    z_eval = model.last_solution.z
    model.train()
    model(data)  # a training pass: dropout on the input
    z_train = model.last_solution.z.detach()
    assert not torch.allclose(z_train, z_eval, atol=1e-3)
    model.eval()  # as the penalty calls it
    f, P = model.operator(data)
    at_eval = JacobianPenalty(1.0, "spectral", 0.9, 1, 0, at="eval")._point(model, f, P)
    at_train = JacobianPenalty(1.0, "spectral", 0.9, 1, 0, at="train")._point(model, f, P)
    assert torch.allclose(at_eval, z_eval, atol=1e-6) and torch.equal(at_train, z_train)


def test_models_without_the_degree_norm_refuse_it(tmp_path):
    from fixpt.models.examples import tiny_navier_stokes_run

    params = tiny_navier_stokes_run(tmp_path / "data")
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in params.items()]
    res = cli("train", "anie", *flags, "--jac-penalty", "1", "--state-norm", "degree", "--out", tmp_path / "anie")
    one_line_error(res, "--state-norm degree", "l2 only")


def test_contractive_sage_with_mean_aggregation_is_certified_in_the_degree_norm(tmp_path):
    """--contractive --aggregation mean: ||W_r|| = ||W_l|| = gamma/2 keeps D^-1 A and certifies gamma in the degree
    norm, where the Euclidean bound pays sqrt(||M||_1 ||M||_inf) for the aggregation; the dense local norm of the
    damped map, alpha I + (1 - alpha) J_T, lies under alpha + (1 - alpha) gamma."""
    out = tmp_path / "sn-mean"
    train("pign", {**PIGN, "contractive": True, "aggregation": "mean"}, GRAPH, {"epochs": 5, "seed": 0}, out=out, device="cpu")
    trained = load_trained(out / "ckpt.pt", device="cpu")
    model, data = trained.model, trained.data
    assert model.block.aggregation == "mean"
    bound, why = model.certified_lipschitz(data, "degree")
    assert bound == pytest.approx(0.9, rel=1e-3), why
    assert model.certified_lipschitz(data, "l2")[0] > 1.0
    dense = dense_local_norm(model, data, model.state_scale(data, "degree"))
    assert dense <= 0.5 + 0.5 * bound * (1 + 1e-4)
    report = json.loads(cli("check-contraction", out / "ckpt.pt", "--state-norm", "degree", "--json").stdout)
    assert report["verdict"] == "certified" and report["certified_bound"] == pytest.approx(bound, rel=1e-6)
    res = cli("train", "pign", "--backbone", "gcn", "--aggregation", "mean", "--dataset", "csbm", "--csbm-nodes", "60",
              "--epochs", "1", "--out", tmp_path / "gcn")
    one_line_error(res, "aggregation is a sage option")
