"""The generated long-range benchmark: a 2-layer GNN provably sees nothing of the label, PIGN does."""

import pytest
import torch

from fixpt.data.graph import GraphDataConfig, load_graph
from fixpt.train import build, train

SMALL = {"dataset": "longrange", "longrange_distance": 4, "longrange_graphs": 200}


def test_structure_and_masks():
    data = load_graph(GraphDataConfig(dataset="longrange", longrange_distance=5, longrange_graphs=40, longrange_noise_std=0.0))
    assert data.num_nodes == 40 * 6 and data.edge_index.shape[1] == 2 * 40 * 5  # 5 undirected edges per path
    pos = torch.arange(data.num_nodes) % 6
    for split in ("train", "val", "test"):
        assert (pos[getattr(data, f"{split}_mask")] == 5).all()  # only targets are scored
    assert int(data.train_mask.sum() + data.val_mask.sum() + data.test_mask.sum()) == 40
    c = data.num_classes
    signal = data.x[:, :c]
    assert torch.equal(signal[pos == 0].argmax(1), data.y[pos == 0])  # the class is at the source...
    assert (signal[pos != 0] == 0).all()  # ...and nowhere else


def _outputs_after_relabelling(name, cfg):
    """Target outputs of one (untrained) model before and after moving every source's class."""
    torch.manual_seed(0)
    _, _, model, data, _, _ = build(name, cfg, {**SMALL, "longrange_noise_std": 0.0}, "cpu")
    model.eval()
    c = data.num_classes
    relabelled = data.clone()
    src = torch.arange(data.num_nodes) % 5 == 0
    relabelled.x[src, :c] = data.x[src, :c].roll(1, dims=1)  # class k -> k + 1
    with torch.no_grad():
        return model(data)[data.test_mask], model(relabelled)[data.test_mask]


def test_two_layer_gnn_output_does_not_depend_on_the_label():
    before, after = _outputs_after_relabelling("gnn", {"layers": 2})
    assert torch.equal(before, after)  # the 2-hop neighbourhood of a target holds no label feature


def test_pign_iterations_reach_the_label():
    before, after = _outputs_after_relabelling("pign", {"max_iter": 8, "tol": 0.0})
    assert not torch.allclose(before, after)
    before, after = _outputs_after_relabelling("pign", {"max_iter": 3, "tol": 0.0})
    assert torch.equal(before, after)  # 3 iterations = 3 hops < 4: still blind


@pytest.mark.slow
def test_accuracy_rises_with_iterations_where_a_2_layer_gnn_sits_at_chance():
    gnn = train("gnn", {"layers": 2, "dropout": 0.0}, SMALL, {"epochs": 60})
    pign = train("pign", {"max_iter": 8, "alpha": 0.0, "dropout": 0.0}, SMALL, {"epochs": 150})
    n_test, chance = 50, 0.25
    assert gnn["test_accuracy"] <= chance + 3 * (chance * (1 - chance) / n_test) ** 0.5
    assert pign["test_accuracy"] >= 0.8
