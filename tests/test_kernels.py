"""The two kernel backends: the fast kernels against torch-geometric's convolutions (forward and backward),
the two dropouts' statistics, the same Cora accuracies from either backend, and the fallback to the
reference backend when the fast kernels fail their self-check."""

import pytest
import torch
from torch_geometric.utils import erdos_renyi_graph

from fixpt.errors import FixptError
from fixpt.models import kernels
from fixpt.models.base import seed_batch_mode
from fixpt.models.blocks import GCNBlock, SAGEBlock, make_block
from fixpt.models.dropout import Dropout
from fixpt.models.gat import GATBlock
from fixpt.models.kernels.csr import sparse_features
from fixpt.train import build, train

N = 30
FLOAT32 = dict(rtol=1.3e-6, atol=1e-5)  # torch.testing's float32 tolerance: the fast kernels keep propagation values in float32
BLOCKS = {
    "gcn": lambda backend: GCNBlock(6, 4, backend=backend),
    "sage-mean": lambda backend: SAGEBlock(6, 4, backend=backend),
    "sage-sym": lambda backend: SAGEBlock(6, 4, aggregation="sym", backend=backend),
    "sage-contractive": lambda backend: make_block("sage", 6, contractive=True, gamma=0.8, backend=backend),
    "gat-concat": lambda backend: GATBlock(6, 2, heads=3, backend=backend),
    "gat-mean": lambda backend: GATBlock(6, 4, heads=3, concat=False, backend=backend),
}


@pytest.fixture
def graph():
    """A random directed graph with a repeated edge and two self-loops (real data may have both)."""
    torch.manual_seed(0)
    ei = erdos_renyi_graph(N, 0.15, directed=True)
    return torch.cat([ei, ei[:, :1], torch.tensor([[2, 7], [2, 7]])], dim=1)


def twins(name: str):
    """The block ``name`` in both backends, with the same float64 parameters."""
    torch.manual_seed(1)
    fast = BLOCKS[name]("fast").double()
    torch.manual_seed(1)
    reference = BLOCKS[name]("reference").double()
    reference.load_state_dict(fast.state_dict())  # same names and shapes: either checkpoint loads into either
    return fast, reference


@pytest.mark.parametrize("name", list(BLOCKS))
def test_fast_blocks_equal_the_reference_convolutions(name, graph):
    """Forward and backward (inputs and every parameter) of the CSR kernels against torch-geometric's message passing."""
    fast, reference = twins(name)
    x = torch.randn(N, 6, dtype=torch.double, requires_grad=True)
    out_fast, out_ref = fast(x, graph), reference(x, graph)
    torch.testing.assert_close(out_fast, out_ref, **FLOAT32)
    w = torch.randn_like(out_ref)
    grads_fast = torch.autograd.grad((out_fast * w).sum(), [x, *fast.parameters()])
    grads_ref = torch.autograd.grad((out_ref * w).sum(), [x, *reference.parameters()])
    for g_fast, g_ref in zip(grads_fast, grads_ref):
        torch.testing.assert_close(g_fast, g_ref, **FLOAT32)


@pytest.mark.parametrize("name", ["gcn", "sage-mean", "gat-concat"])
def test_sparse_input_features_give_what_dense_ones_give(name, graph):
    """A first layer fed the features as a sparse matrix (fast) equals the reference fed them dense."""
    fast, reference = twins(name)
    x = (torch.rand(N, 6) < 0.05).double() * torch.rand(N, 6, dtype=torch.double)
    sparse = sparse_features(x)
    assert isinstance(sparse, kernels.SparseMatrix)
    torch.testing.assert_close(fast(sparse, graph), reference(x, graph), **FLOAT32)


def test_the_graph_is_built_once_and_passed_explicitly():
    _, _, model, data, _, _ = build("pign", {"hidden": 8, "backbone": "sage"}, {"dataset": "csbm", "csbm_nodes": 60}, "cpu")
    graph = model.graphs(data)
    assert model.graphs(data) is graph  # the same data: the same constants
    assert set(graph.needs) == {"mean"} and graph.propagation("mean").shape == (60, 60)
    with torch.no_grad():
        data.x.mul_(1.0)  # modified in place: a new version, built again
    assert model.graphs(data) is not graph
    assert not any(k.startswith("_fixpt") for k in vars(data.edge_index)) and not any(k.startswith("_fixpt") for k in vars(data.x))


def test_the_two_dropouts_keep_the_same_fraction_and_scale():
    """Both keep an entry with probability 1 - p and scale it by 1 / (1 - p) (fast: to 2^-16). Over
    n = 10^6 entries a kept fraction has standard deviation sqrt(p (1 - p) / n) = 4.6e-4 at p = 0.3,
    so 2.5e-3 is more than five of them and a keep probability off by 1 % would fail."""
    torch.manual_seed(0)
    n, p = 1_000_000, 0.3
    sigma = (p * (1 - p) / n) ** 0.5
    x = torch.ones(n)
    for backend in kernels.BACKENDS:
        out = Dropout(p, backend=backend)(x)
        kept = out != 0
        assert abs(float(kept.double().mean()) - (1 - p)) < 5.5 * sigma, backend
        torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / (1 - p)), rtol=1e-5, atol=0)
    # the non-zeros of sparse features (fast) against dense dropout of the same matrix (reference)
    features = (torch.rand(2000, 1000) < 0.02).float()
    kept_sparse = Dropout(p, backend="fast")(sparse_features(features)).values != 0
    kept_dense = Dropout(p, backend="reference")(features)[features != 0] != 0
    m = kept_sparse.numel()
    for kept in (kept_sparse, kept_dense):
        assert abs(float(kept.double().mean()) - (1 - p)) < 5.5 * (p * (1 - p) / m) ** 0.5


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["gcn", "sage", "gat"])
def test_reference_backend_gives_the_same_cora_accuracies(backbone, data_root, monkeypatch):
    """30 epochs of PIGN on Cora without dropout (the two backends draw their masks differently; about
    0.8 train and 0.4 test accuracy): the same scores from torch-geometric's convolutions as from the CSR kernels."""
    model_cfg = {"backbone": backbone, "hidden": 16, "dropout": 0.0, "attn_dropout": 0.0}
    data_cfg = {"dataset": "cora", "data_root": str(data_root)}
    calls = []
    reference_call = kernels.ReferenceConv.__call__
    monkeypatch.setattr(kernels.ReferenceConv, "__call__", lambda *args: calls.append(1) or reference_call(*args))
    runs = {}
    for backend in kernels.BACKENDS:
        monkeypatch.setenv(kernels.ENV, backend)
        runs[backend] = train("pign", model_cfg, data_cfg, {"epochs": 30, "seed": 0}, out=None, device="cpu")
        assert bool(calls) == (backend == "reference")  # each run went through its own backend
    for key in ("best_epoch", "train_accuracy", "val_accuracy", "test_accuracy"):
        assert runs["reference"][key] == pytest.approx(runs["fast"][key], abs=1e-6), key
    assert runs["reference"]["val_loss"] == pytest.approx(runs["fast"]["val_loss"], rel=1e-5)


@pytest.fixture
def broken_fast_kernels(monkeypatch):
    monkeypatch.delenv(kernels.ENV, raising=False)
    monkeypatch.setattr(kernels, "self_check", lambda: "RuntimeError: CSR tensors are gone")
    kernels._fast_kernels_work.cache_clear()
    yield
    kernels._fast_kernels_work.cache_clear()  # the next block checks the real kernels again


def test_failed_self_check_falls_back_to_the_reference_backend(broken_fast_kernels):
    with pytest.warns(RuntimeWarning, match="CSR tensors are gone"):
        _, _, model, data, _, _ = build("pign", {"hidden": 8}, {"dataset": "csbm", "csbm_nodes": 60}, "cpu")
    backends = {m.backend for m in model.modules() if hasattr(m, "backend")}
    assert backends == {"reference"}
    assert model(data).shape == (60, data.num_classes)  # it still runs, through torch-geometric
    with pytest.raises(FixptError, match="fast graph kernels"):  # seed batches need the fast kernels' vmap rules
        with seed_batch_mode(model):
            pass


def test_the_self_check_passes_and_a_bad_backend_name_is_refused(monkeypatch):
    assert kernels.self_check() is None
    monkeypatch.setenv(kernels.ENV, "fastest")
    with pytest.raises(FixptError, match="valid: fast, reference"):
        kernels.backend()
