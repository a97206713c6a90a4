"""CSR propagation and sparse inputs against dense computations, and the blocks against torch-geometric."""

import pytest
import torch
from torch.func import jvp, vjp
from torch_geometric.nn import GCNConv, SAGEConv
from torch_geometric.utils import erdos_renyi_graph

from fixpt.models.blocks import GCNBlock, SAGEBlock
from fixpt.models.kernels import SparseMatrix, dropout_nonzeros, linear, propagation_matrix
from fixpt.models.kernels.csr import sparse_features

N = 40


@pytest.fixture
def graph():
    torch.manual_seed(0)
    return erdos_renyi_graph(N, 0.1, directed=True)


def dense_adjacency(edge_index):
    A = torch.zeros(N, N, dtype=torch.double)
    A[edge_index[1], edge_index[0]] = 1.0  # row = target, column = source
    return A


def test_propagation_matrices_match_their_definitions(graph):
    A = dense_adjacency(graph)
    A_loop = A + torch.eye(N, dtype=torch.double)
    d = A_loop.sum(1)
    expected = {
        "gcn": A_loop / torch.sqrt(d[:, None] * d[None, :]),
        "mean": A / A.sum(1).clamp_min(1)[:, None],
    }
    # sym: D^-1/2 A D^-1/2 with the degree PyG uses (incoming edges)
    deg = A.sum(1)
    inv = torch.where(deg > 0, deg.rsqrt(), torch.zeros_like(deg))
    expected["sym"] = inv[:, None] * A * inv[None, :]
    for kind, M in expected.items():
        assert torch.allclose(propagation_matrix(graph, N, kind).to_dense().double(), M, atol=1e-6), kind


def test_product_gradients_and_forward_mode_match_dense(graph):
    P = propagation_matrix(graph, N, "gcn")
    M = P.to_dense().double()
    x = torch.randn(N, 3, dtype=torch.double, requires_grad=True)
    y = P @ x
    assert torch.allclose(y, M @ x)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    assert torch.allclose(gx, M.t() @ g)
    _, t = jvp(lambda z: P @ z, (x.detach(),), (g,))
    assert torch.allclose(t, M @ g)
    _, pull = vjp(lambda z: torch.sin(P @ z), x.detach())
    assert torch.allclose(pull(g)[0], M.t() @ (torch.cos(M @ x.detach()) * g))


def test_sparse_features_and_their_dropout():
    torch.manual_seed(0)
    x = (torch.rand(50, 30) < 0.05).float() * torch.rand(50, 30)
    sp = sparse_features(x)
    assert isinstance(sp, SparseMatrix) and torch.equal(sp.to_dense(), x)
    assert sparse_features(torch.rand(50, 30)) is None  # dense features stay dense
    w = torch.randn(4, 30, dtype=torch.float)
    assert torch.allclose(linear(sp, w), x @ w.t(), atol=1e-6)
    dropped = dropout_nonzeros(sp, 0.5, training=True)
    dense = dropped.to_dense()
    kept = dense != 0
    assert (kept <= (x != 0)).all()  # zeros stay zero
    assert torch.allclose(dense[kept], 2 * x[kept])  # kept entries scaled by 1 / (1 - p)
    assert 0.3 < kept.sum() / (x != 0).sum() < 0.7
    assert torch.allclose(linear(dropped, w), dense @ w.t(), atol=1e-6)


def test_blocks_equal_torch_geometric_convolutions(graph):
    x = torch.randn(N, 8, dtype=torch.double)
    ref, ours = GCNConv(8, 5).double(), GCNBlock(8, 5, backend="fast").double()
    ours.load_state_dict({"lin.weight": ref.lin.weight, "bias": ref.bias})
    assert torch.allclose(ref(x, graph), ours(x, graph), atol=1e-12)
    ref, ours = SAGEConv(8, 5).double(), SAGEBlock(8, 5, backend="fast").double()
    ours.load_state_dict(ref.state_dict())
    assert torch.allclose(ref(x, graph), ours(x, graph), atol=1e-12)


@pytest.mark.parametrize(("values_batched", "x_batched"), [(True, True), (True, False), (False, True)])
def test_sparse_product_under_vmap_matches_dense(values_batched, x_batched):
    """The vmap rule of the sparse product (seed batches: per-seed dropout values, per-seed weights)
    against dense products, forward and backward (the backward is the transposed product)."""
    from torch.func import vmap

    torch.manual_seed(0)
    pattern = SparseMatrix.from_dense((torch.rand(6, 5) < 0.4) * torch.randn(6, 5))
    B = 3
    values = torch.randn(B, pattern.values.numel()) if values_batched else pattern.values
    x = torch.randn(B, 5, 4) if x_batched else torch.randn(5, 4)
    x.requires_grad_(True)
    out = vmap(lambda v, y: pattern.with_values(v) @ y, in_dims=(0 if values_batched else None, 0 if x_batched else None))(values, x)
    dense = [torch.zeros(6, 5).index_put((pattern.rows, pattern.cols), values[b] if values_batched else values) for b in range(B)]
    xs = [x[b] if x_batched else x for b in range(B)]
    expected = torch.stack([d @ y for d, y in zip(dense, xs)])
    assert torch.allclose(out, expected, atol=1e-6)
    w = torch.randn_like(out)
    (grad,) = torch.autograd.grad((out * w).sum(), x)
    expected_grad = torch.stack([d.t() @ w[b] for b, d in enumerate(dense)])
    assert torch.allclose(grad, expected_grad if x_batched else expected_grad.sum(0), atol=1e-5)
