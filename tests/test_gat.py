"""fixpt's GAT block against torch-geometric's GATConv, and its derivatives against finite differences."""

import pytest
import torch
from torch.func import jvp, vjp
from torch_geometric.nn import GATConv
from torch_geometric.utils import erdos_renyi_graph

from fixpt.models.gat import GATBlock


@pytest.fixture
def graph():
    torch.manual_seed(0)
    ei = erdos_renyi_graph(60, 0.08, directed=True)
    return torch.cat([ei, torch.tensor([[3, 5], [3, 5]])], dim=1)  # with existing self-loops, as real data may have


@pytest.mark.parametrize("heads, out, concat", [(1, 5, True), (3, 4, True), (8, 7, False)])
def test_matches_torch_geometric(graph, heads, out, concat, device):
    ref = GATConv(7, out, heads=heads, concat=concat).double().to(device)
    ours = GATBlock(7, out, heads=heads, concat=concat, backend="fast").double().to(device)
    assert set(ours.state_dict()) == set(ref.state_dict())  # checkpoints are interchangeable
    ours.load_state_dict(ref.state_dict())
    ei = graph.to(device)
    x = torch.randn(60, 7, dtype=torch.double, device=device, requires_grad=True)
    a, b = ref(x, ei), ours(x, ei)
    assert torch.allclose(a, b, atol=1e-12)
    w = torch.randn_like(a)
    ga = torch.autograd.grad((a * w).sum(), [x, *ref.parameters()])
    gb = torch.autograd.grad((b * w).sum(), [x, *ours.parameters()])
    for u, v in zip(ga, gb):
        assert torch.allclose(u, v, atol=1e-10)


def test_forward_mode_and_second_derivatives(graph):
    torch.manual_seed(1)
    block = GATBlock(6, 3, heads=2, backend="fast").double()
    f = lambda z: torch.tanh(block(z, graph))  # noqa: E731
    x = torch.randn(60, 6, dtype=torch.double)
    v = torch.randn_like(x)
    _, tangent = jvp(f, (x,), (v,))
    eps = 1e-6
    assert torch.allclose(tangent, (f(x + eps * v) - f(x - eps * v)) / (2 * eps), atol=1e-7)
    _, pullback = vjp(f, x)
    u = torch.randn(60, 6, dtype=torch.double)
    (g,) = pullback(u)
    assert torch.allclose((g * v).sum(), (tangent * u).sum())  # <J^T u, v> = <u, J v>
    small = erdos_renyi_graph(8, 0.3, directed=True)
    assert torch.autograd.gradgradcheck(lambda z: block(z, small), (torch.randn(8, 6, dtype=torch.double, requires_grad=True),))


def test_attention_dropout_only_in_training(graph):
    block = GATBlock(4, 4, heads=2, dropout=0.5)
    x = torch.randn(60, 4)
    block.train()
    assert not torch.equal(block(x, graph), block(x, graph))
    block.eval()
    assert torch.equal(block(x, graph), block(x, graph))


@pytest.mark.parametrize("backbone", ["gcn", "sage", "gat"])
def test_blocks_initialise_like_torch_geometric(backbone):
    """Same weight distributions as the torch-geometric convolutions (compared by spread over many draws)."""
    from torch_geometric.nn import GCNConv, SAGEConv

    from fixpt.models.blocks import make_block

    torch.manual_seed(0)
    ref = {"gcn": lambda: GCNConv(256, 256), "sage": lambda: SAGEConv(256, 256), "gat": lambda: GATConv(256, 32, heads=8)}[backbone]
    ours, theirs = make_block(backbone, 256), ref()
    for name, p in theirs.named_parameters():
        q, p = dict(ours.named_parameters())[name].detach(), p.detach()
        if p.numel() > 1000:
            assert float(q.std()) == pytest.approx(float(p.std()), rel=0.05), name
            assert float(q.abs().max()) == pytest.approx(float(p.abs().max()), rel=0.05), name
