"""scripts/linear_filters.py: its filters against closed forms (dense solves, exact cancellation)."""

import importlib.util
from pathlib import Path

import pytest
import torch

spec = importlib.util.spec_from_file_location("linear_filters", Path(__file__).parents[1] / "scripts" / "linear_filters.py")
lf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lf)


@pytest.fixture
def graph():
    g = torch.Generator().manual_seed(0)
    n = 30
    edges = torch.randint(0, n, (2, 80), generator=g)
    edges = torch.cat([edges, edges.flip(0)], 1)
    return n, edges[:, edges[0] != edges[1]], torch.randn(n, 5, generator=g, dtype=torch.float64)


def test_propagation_matrices(graph):
    n, edges, _ = graph
    mean = lf.propagation(edges, n, "mean").to_dense()
    sym = lf.propagation(edges, n, "sym").to_dense()
    assert torch.allclose(mean.sum(1), torch.ones(n, dtype=torch.float64))
    assert torch.allclose(sym, sym.T) and torch.linalg.eigvalsh(sym).abs().max() <= 1 + 1e-12
    assert (torch.diagonal(mean) > 0).all()  # self-loops


@pytest.mark.parametrize("kind", ["sym", "mean"])
def test_geometric_filter_is_the_fixed_point_of_the_linear_contraction(graph, kind):
    n, edges, x = graph
    p = lf.propagation(edges, n, kind)
    (z,) = lf.apply_filters(p, [lf.geometric(0.5, hops=60)], x)
    fixed_point = 0.5 * torch.linalg.solve(torch.eye(n, dtype=torch.float64) - 0.5 * p.to_dense(), x)
    assert torch.allclose(z, fixed_point, atol=1e-12)


@pytest.mark.parametrize("ratios", [(0.8, 0.6), (0.8, 0.6, 0.4), (0.8, 0.7, 0.6, 0.5)])
def test_combination_cancels_the_first_hops_and_is_made_of_geometric_filters(ratios):
    c = lf.combination(ratios)
    m = len(ratios)
    assert c[: m - 1].abs().max() < 1e-10 and c.abs().max() == pytest.approx(1.0)
    basis = torch.stack([lf.geometric(r) for r in ratios], 1)
    coeffs = torch.linalg.lstsq(basis, c[:, None]).solution
    assert torch.allclose(basis @ coeffs, c[:, None], atol=1e-10)
    assert int(c.abs().argmax()) > 0  # the weight moved away from the input
