"""PIGN with any torch_geometric.nn convolution as the iterated block (``--backbone pyg:NAME``): the CLI end to end
on a tiny generated graph (train, iterate, check-contraction, sweep with seed batches, report), numerics against
fixpt's own GCN block and a dense Jacobian, and every bad input as a one-line error with exit code 2."""

from __future__ import annotations

import json

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.nn import GINConv

from cli_checks import one_line_error, run
from fixpt.checkpoint import load_checkpoint
from fixpt.config import from_dict
from fixpt.contraction import lipschitz
from fixpt.errors import FixptError
from fixpt.models.blocks import GCNBlock, make_block
from fixpt.models.pign import PIGN, PIGNConfig

CSBM = ["--csbm-nodes", "120", "--csbm-classes", "3", "--hidden", "8"]


def ok(*args):
    res = run(*args)
    assert res.exit_code == 0, res.output
    return res


def test_gin_pign_trains_iterates_and_checks_contraction(tmp_path):
    out = tmp_path / "gin"
    metrics = json.loads(ok("train", "pign", "--backbone", "pyg:GINConv", "--block-kwargs", '{"eps": 0.1}', *CSBM, "--epochs", 8,
                            "--out", out, "--device", "cpu", "--json").stdout)
    assert metrics["n_iter"] >= 1 and 0 <= metrics["test_accuracy"] <= 1
    config = load_checkpoint(out / "ckpt.pt")["config"]
    assert config["backbone"] == "pyg:GINConv" and json.loads(config["block_kwargs"]) == {"eps": 0.1}
    # the checkpoint rebuilds the same conv: iterating to the trained depth reproduces the trained test accuracy
    res = run("iterate", out / "ckpt.pt", "--json")
    it = json.loads(res.stdout)
    assert res.exit_code == (0 if it["converged_at"] is not None else 1), res.output  # 1: not converged within --max-iter
    trained = [r for r in it["iterations"] if r["k"] == metrics["n_iter"]]
    assert trained and trained[0]["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    res = run("check-contraction", out / "ckpt.pt", "--samples", 3, "--iters", 20, "--json")
    assert res.exit_code in (0, 1), res.output  # 1: not contractive, an answer, not a failure
    cc = json.loads(res.stdout)
    assert cc["certified_bound"] is None and "GINConv" in cc["certified_reason"] and "no certified bound" in cc["certified_reason"]
    assert cc["verdict"] in ("empirical", "not contractive") and cc["local_norm"]["max"] > 0 and cc["spectral_radius"] > 0
    text = run("check-contraction", out / "ckpt.pt", "--samples", 2, "--iters", 10).stdout
    row = text[text.index("certified bound"):text.index("damped factor")]  # the table wraps the reason over lines
    assert "none" in row and "(GINConv)" in row and "provides no certified" in row and "empirical estimates" in row


def test_sweep_with_seed_batches_trains_pyg_runs_one_at_a_time_and_reports_them(tmp_path):
    preset = tmp_path / "gin.yaml"
    preset.write_text("model: pign\nseeds: 2\nbase: {epochs: 2, csbm_nodes: 100, hidden: 8}\n"
                      "grid:\n  backbone: [gcn, 'pyg:GINConv']\n  block_kwargs: ['', {train_eps: true}]\n")
    res = run("sweep", preset, "--out", tmp_path / "sw", "--device", "cpu", "--seed-batch", 2, "--json")
    # gcn with block_kwargs is refused when the preset is planned: give the grid as a union instead
    one_line_error(res, "block_kwargs configure pyg: backbones only")
    preset.write_text("model: pign\nseeds: 2\nbase: {epochs: 2, csbm_nodes: 100, hidden: 8}\n"
                      "grid:\n  - {backbone: [gcn]}\n  - {backbone: ['pyg:GINConv'], block_kwargs: [{train_eps: true}]}\n")
    counts = json.loads(ok("sweep", preset, "--out", tmp_path / "sw", "--device", "cpu", "--seed-batch", 2, "--json").stdout)
    assert counts["finished"] == 4 and counts["failed"] == 0
    gin_runs = [json.loads(p.read_text()) for p in (tmp_path / "sw").rglob("metrics.json")]
    assert sum("seed_batch" not in m for m in gin_runs) >= 2  # the pyg seeds were not vmapped
    for layout, label in (("table5", "PIGN (fixed-point) with GINConv"), ("table1", "GINConv")):
        table = json.loads(ok("report", tmp_path / "sw", "--layout", layout, "--format", "json").stdout)
        labels = {c["row"] for c in table["cells"]} | {c["column"] for c in table["cells"]}
        assert label in labels and all(c["n"] == 2 for c in table["cells"]), table["cells"]


def test_a_pyg_conv_equals_fixpts_block_with_the_same_weights():
    """pyg:GCNConv (torch-geometric's message passing) against fixpt's CSR GCN block holding its weights."""
    torch.manual_seed(0)
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3, 4, 0], [1, 0, 2, 1, 3, 2, 0, 4]])
    x = torch.randn(5, 6, dtype=torch.float64)
    pyg = make_block("pyg:GCNConv", 6).double()
    ours = GCNBlock(6, 6, backend="fast").double()
    with torch.no_grad():
        ours.lin.weight.copy_(pyg.pyg.conv.lin.weight)
        ours.bias.copy_(pyg.pyg.conv.bias)
    # the CSR propagation values are float32: agreement to float32 rounding
    torch.testing.assert_close(pyg(x, edge_index), ours(x, edge_index), rtol=1e-6, atol=1e-6)


def test_the_local_norm_of_a_parameter_free_conv_is_its_propagation_norm():
    """pyg:LGConv is z -> D^-1/2 A D^-1/2 z: its Jacobian norm (fixpt.lipschitz, power iteration) is that matrix's
    largest singular value, computed densely here."""
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 0, 0, 2], [1, 0, 2, 1, 3, 2, 0, 3, 2, 0]])
    block = make_block("pyg:LGConv", 4).double()
    A = torch.zeros(4, 4, dtype=torch.float64)
    A[edge_index[1], edge_index[0]] = 1.0
    d = A.sum(1).rsqrt()
    sigma = float(torch.linalg.matrix_norm(d[:, None] * A * d[None, :], ord=2))
    z = torch.randn(4, 4, dtype=torch.float64)
    assert float(lipschitz(lambda v: block(v, edge_index), z, iters=500, tol=1e-12)) == pytest.approx(sigma, rel=1e-8)


def test_edge_features_reach_a_conv_that_takes_them():
    """GINEConv gets the data's edge_attr (width edge_dim); without edge features it is a one-line error."""
    cfg = from_dict(PIGNConfig, {"backbone": "pyg:GINEConv", "hidden": 8, "block_kwargs": '{"edge_dim": 2}'})
    model = PIGN(cfg, 3, 2).eval()
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    data = Data(x=torch.randn(3, 3), edge_index=edge_index, edge_attr=torch.randn(4, 2), num_nodes=3)
    out = model(data)
    data.edge_attr = 2 * data.edge_attr  # a different edge_attr tensor: a different operator (the graph cache sees it)
    assert out.shape == (3, 2) and not torch.allclose(model(data), out)
    data.edge_attr = data.edge_attr / 2
    torch.testing.assert_close(model(data), out)
    with pytest.raises(FixptError, match="without edge features.*edge_attr"):
        PIGN(cfg, 3, 2)(Data(x=torch.randn(3, 3), edge_index=edge_index, num_nodes=3))


def test_the_default_gin_mlp_and_widths():
    block = make_block("pyg:GINConv", 8)
    assert isinstance(block.pyg.conv, GINConv)
    mlp = block.pyg.conv.nn
    assert [m.in_features for m in mlp if isinstance(m, torch.nn.Linear)] == [8, 8]
    edge = make_block("pyg:EdgeConv", 8)  # its MLP sees [z_i, z_j - z_i]
    assert edge.pyg.conv.nn[0].in_features == 16


@pytest.mark.parametrize("args, needles", [
    (["--backbone", "pyg:GINconv"], ["did you mean pyg:GINConv"]),
    (["--backbone", "pyg:Qwerty"], ["is not a class of torch_geometric.nn", "one of AGNNConv", "GINConv"]),
    (["--backbone", "pyg:GCN"], ["'GCN' is not a message-passing convolution", "pyg:GCNConv"]),
    (["--backbone", "gin"], ["unknown backbone 'gin'", "pyg:GINConv"]),
    (["--backbone", "pyg:GINConv", "--block-kwargs", '{"epsilon": 0.1}'], ["takes no argument 'epsilon'", "did you mean 'eps'"]),
    (["--backbone", "pyg:GINConv", "--block-kwargs", '{"eps": "big"}'], ["GINConv(", "failed", "--block-kwargs"]),
    (["--backbone", "pyg:GINConv", "--block-kwargs", "[1, 2]"], ["must be a JSON object"]),
    (["--backbone", "pyg:ChebConv"], ["needs the constructor argument(s) K", '"K": ...']),
    (["--backbone", "pyg:NNConv"], ["needs a torch module 'nn'", "fixpt.DEQ"]),
    (["--backbone", "pyg:GCN2Conv"], ["forward takes (x, x_0, edge_index", "choose another convolution"]),
    (["--backbone", "pyg:GATConv", "--block-kwargs", '{"heads": 2}'], ["maps width 8 to 16", "concat"]),
    (["--backbone", "pyg:GINConv", "--contractive"], ["--contractive needs backbone gcn or sage"]),
    (["--backbone", "gcn", "--block-kwargs", '{"eps": 0.1}'], ["configure pyg: backbones only"]),
    (["--backbone", "pyg:GATConv", "--block-kwargs", '{"dropout": 0.5, "concat": false}', "--grad", "last"],
     ["needs a deterministic operator"]),
    (["--backbone", "pyg:GINEConv"], ["without edge features", "pyg:GINConv"]),
])
def test_bad_pyg_backbones_are_one_line_errors(tmp_path, args, needles):
    one_line_error(run("train", "pign", *args, *CSBM, "--epochs", 1, "--out", tmp_path / "run", "--device", "cpu"), *needles)


def test_a_seed_batch_of_a_pyg_backbone_is_refused_by_name():
    """Seed batches need fixpt's fast kernels (vmap rules): a sweep trains pyg seeds one at a time, and asking for a
    batch directly is a one-line error, never a crash inside vmap."""
    from fixpt.seed_batch import train_seeds, unbatchable_reason

    assert "torch-geometric" in unbatchable_reason("pign", {"backbone": "pyg:GINConv"}, {})
    with pytest.raises(FixptError, match="cannot be trained as a seed batch.*one at a time"):
        train_seeds("pign", {"backbone": "pyg:GINConv", "hidden": 8}, {"csbm_nodes": 60}, {"epochs": 1}, [0, 1], device="cpu")


@pytest.mark.parametrize("given", ['{"train_eps": true, "eps": 0.5}', {"train_eps": True, "eps": 0.5}])
def test_block_kwargs_from_the_command_line_or_a_preset_mapping(given):
    """JSON from --block-kwargs, or a preset's YAML mapping (which the config stores as its text)."""
    cfg = from_dict(PIGNConfig, {"backbone": "pyg:GINConv", "hidden": 8, "block_kwargs": given})
    assert cfg.block_arguments() == {"train_eps": True, "eps": 0.5}
    conv = PIGN(cfg, 4, 2).block.pyg.conv
    assert float(conv.eps.detach()) == 0.5 and conv.eps.requires_grad  # train_eps: eps is a parameter


def test_a_plain_gnn_of_pyg_convs_equals_fixpts_gcn_with_the_same_weights():
    """gnn --backbone pyg:GCNConv: layers built from the width before to the width after (6 -> 8 -> 3), ReLU
    between, against fixpt's own GCN layers holding the same weights (evaluation mode: no dropout); sparse input
    features (fixpt's CSR matrix, as bag-of-words sets load) are made dense for torch-geometric."""
    from fixpt.models.gnn import GNN, GNNConfig
    from fixpt.models.kernels import SparseMatrix

    torch.manual_seed(0)
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3, 4, 0], [1, 0, 2, 1, 3, 2, 0, 4]])
    x = torch.relu(torch.randn(5, 6, dtype=torch.float64))  # sparse-ish, non-negative like bag-of-words
    pyg = GNN(from_dict(GNNConfig, {"backbone": "pyg:GCNConv", "hidden": 8}), 6, 3).double().eval()
    ours = GNN(from_dict(GNNConfig, {"backbone": "gcn", "hidden": 8}), 6, 3).double().eval()
    assert [(c.pyg.conv.in_channels, c.pyg.conv.out_channels) for c in pyg.convs] == [(6, 8), (8, 3)]
    with torch.no_grad():
        for a, b in zip(pyg.convs, ours.convs):
            b.lin.weight.copy_(a.pyg.conv.lin.weight)
            b.bias.copy_(a.pyg.conv.bias)
    data = Data(x=x, edge_index=edge_index, num_nodes=5)
    torch.testing.assert_close(pyg(data), ours(data), rtol=1e-6, atol=1e-6)
    layer, xf = pyg.convs[0].float(), x.float()
    torch.testing.assert_close(layer(SparseMatrix.from_dense(xf), edge_index), layer(xf, edge_index))


def test_a_plain_gin_layer_gets_a_rectangular_mlp():
    from fixpt.models.kernels.pyg import build_conv

    conv, _ = build_conv("GINConv", 8, in_width=5)
    assert [m.in_features for m in conv.nn if isinstance(m, torch.nn.Linear)] == [5, 8]
    assert conv(torch.randn(4, 5), torch.tensor([[0, 1], [1, 0]])).shape == (4, 8)


@pytest.mark.parametrize("model", ["gnn", "itergnn"])
def test_the_baselines_train_on_a_pyg_backbone(tmp_path, model):
    """The plain GNN and IterGNN take --backbone pyg:NAME as PIGN does, so a PIGN on GIN has its baselines."""
    ok("train", model, "--backbone", "pyg:GINConv", *CSBM, "--epochs", 2, "--out", tmp_path / "run", "--device", "cpu")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1


@pytest.mark.parametrize("model, args, needles", [
    ("gnn", ["--backbone", "pyg:CGConv"], ["keeps its width", "cannot map width", "pign or itergnn"]),
    ("gnn", ["--backbone", "pyg:LGConv"], ["maps width", "needs width 8"]),
    ("gnn", ["--backbone", "pyg:GINconv"], ["did you mean pyg:GINConv"]),
    ("itergnn", ["--backbone", "pyg:GATConv", "--block-kwargs", '{"heads": 2}'], ["maps width 8 to 16", "concat"]),
    ("itergnn", ["--backbone", "sage", "--block-kwargs", '{"eps": 0.1}'], ["configure pyg: backbones only"]),
])
def test_bad_pyg_backbones_of_the_baselines_are_one_line_errors(tmp_path, model, args, needles):
    one_line_error(run("train", model, *args, *CSBM, "--epochs", 1, "--out", tmp_path / "run", "--device", "cpu"), *needles)
