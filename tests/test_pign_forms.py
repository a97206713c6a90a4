"""PIGN's two forms: the paper form against a hand-written loop of Algorithm 1 (GCN and GAT), fresh
dropout masks at every iteration, the pieces a form sets, and both protocols in metrics.json."""

import json

import pytest
import torch
from torch_geometric.nn import GATConv
from typer.testing import CliRunner

from fixpt.cli import app
from fixpt.config import from_dict
from fixpt.errors import FixptError
from fixpt.models.pign import PIGNConfig
from fixpt.seed_batch import train_seeds
from fixpt.train import build, train

GRAPH = {"dataset": "csbm", "csbm_nodes": 30, "csbm_classes": 3, "csbm_features": 6}


def paper_pign(backbone: str, **cfg):
    torch.manual_seed(0)
    _, _, model, data, _, _ = build("pign", {"form": "paper", "backbone": backbone, "hidden": 8, "heads": 4, "max_iter": 5,
                                             "alpha": 0.3, **cfg}, GRAPH, "cpu")
    return model.double(), data.apply(lambda t: t.double() if t.is_floating_point() else t)


def dense_gcn_propagation(edge_index, n):
    """D^-1/2 (A + I) D^-1/2 as a dense matrix (messages flow source -> target)."""
    A = torch.zeros(n, n, dtype=torch.double)
    A[edge_index[1], edge_index[0]] = 1.0
    A = A + torch.eye(n, dtype=torch.double)
    d = A.sum(1).rsqrt()
    return d[:, None] * A * d[None, :]


def test_paper_form_gcn_is_algorithm_1_written_out():
    """x_0 = ReLU(W_e X + b_e); x_{k+1} = a x_k + (1 - a) ReLU(A_hat x_k W^T + b), n times; y = W_d x_n + b_d."""
    model, data = paper_pign("gcn")
    model.eval()
    X, n = data.x, data.num_nodes
    A_hat = dense_gcn_propagation(data.edge_index, n)
    enc, dec, conv = model.encoder[0], model.decoder[1], model.block
    x = torch.relu(X @ enc.weight.T + enc.bias)
    for _ in range(5):
        x = 0.3 * x + 0.7 * torch.relu(A_hat @ (x @ conv.lin.weight.T) + conv.bias)
    expected = x @ dec.weight.T + dec.bias
    with torch.no_grad():
        out = model(data)
    # fixpt keeps the graph's propagation values in float32, so agreement is to float32 rounding (a wrong step is off by ~0.1)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert model.last_solution.n_iter == 5  # tol 0: exactly max_iter iterations, no stop


def test_paper_form_gat_is_algorithm_1_with_pyg_gatconv_heads_averaged():
    model, data = paper_pign("gat")
    model.eval()
    ref = GATConv(8, 8, heads=4, concat=False).double()
    ref.load_state_dict(model.block.state_dict())  # the same parameters, names and shapes as PyG's GATConv(concat=False)
    X = data.x
    enc, dec = model.encoder[0], model.decoder[1]
    x = torch.relu(X @ enc.weight.T + enc.bias)
    for _ in range(5):
        x = 0.3 * x + 0.7 * torch.relu(ref(x, data.edge_index))
    with torch.no_grad():
        out = model(data)
    torch.testing.assert_close(out, x @ dec.weight.T + dec.bias, rtol=1e-10, atol=1e-10)


def test_paper_form_draws_a_fresh_dropout_mask_at_every_iteration():
    model, data = paper_pign("gcn", dropout=0.5, max_iter=4)
    model.train()
    pre, post = [], []
    model.block.register_forward_hook(lambda m, args, out: pre.append(torch.relu(out).detach()))
    step = model.step
    model.step = lambda z, f, d: post.append(step(z, f, d)) or post[-1]
    model(data)
    assert len(pre) == len(post) == 4  # one block evaluation per iteration
    masks = [(b > 0) & (a == 0) for a, b in zip(post, pre)]  # dropped: positive before, zero after
    alive = [int((b > 0).sum()) for b in pre]
    for m, n in zip(masks, alive):
        assert 0.3 < int(m.sum()) / n < 0.7  # about half of the live entries dropped
    assert all(not torch.equal(masks[0], m) for m in masks[1:])  # a new mask every iteration
    kept = [(b > 0) & (a > 0) for a, b in zip(post, pre)]
    torch.testing.assert_close(post[0][kept[0]], 2 * pre[0][kept[0]])  # kept entries scaled by 1 / (1 - p)


def test_paper_form_has_no_free_term_and_evaluation_is_deterministic():
    model, data = paper_pign("gcn")
    model.eval()
    z = torch.rand(data.num_nodes, 8, dtype=torch.double)
    f = torch.full_like(z, 100.0)
    torch.testing.assert_close(model.step(z, f, data), torch.relu(model.block(z, data.edge_index)))  # f is ignored
    with torch.no_grad():
        torch.testing.assert_close(model(data), model(data))


def test_a_piece_overrides_its_form():
    cfg = from_dict(PIGNConfig, {"form": "paper", "free_term": True, "dropout_at": "encoded"})
    assert cfg.piece("free_term") is True and cfg.dropout_sites() == {"encoded"}
    assert cfg.piece("init") == "xavier" and cfg.piece("tol") == 0.0 and cfg.piece("gat_heads") == "mean"
    fixed = from_dict(PIGNConfig, {})
    assert (fixed.piece("free_term"), fixed.dropout_sites(), fixed.piece("tol")) == (True, {"input", "decoder"}, 1e-4)
    model, data = paper_pign("gcn", free_term=True)
    model.eval()
    z = torch.rand(data.num_nodes, 8, dtype=torch.double)
    torch.testing.assert_close(model.step(z, z, data), torch.relu(model.block(z, data.edge_index)) + z)


@pytest.mark.parametrize("cfg, needle", [
    ({"form": "paper", "dropout_at": "encoder"}, "unknown place 'encoder'"),
    ({"form": "paper", "grad": "last"}, "needs a deterministic operator"),
    ({"form": "sketch"}, "must be one of fixed-point, paper"),
    ({"form": "paper", "tol": -1}, "must be >= 0"),
    ({"backbone": "gat", "hidden": 12, "heads": 8}, "--gat-heads mean"),
])
def test_bad_pieces_are_one_line_errors(cfg, needle):
    with pytest.raises(FixptError, match=needle):
        from_dict(PIGNConfig, cfg)


def test_metrics_record_both_protocols():
    """test_accuracy is the best-validation epoch's, test_accuracy_last_epoch the last epoch's: each equal to
    the evaluation of that epoch as training saw it."""
    evs = []
    m = train("pign", {"form": "paper", "hidden": 8, "max_iter": 3}, {**GRAPH, "csbm_nodes": 120}, {"epochs": 15, "patience": 100, "lr": 0.05},
              on_epoch=lambda epoch, ev: evs.append(ev))
    assert m["epochs_run"] == len(evs) == 15
    assert m["test_accuracy_last_epoch"] == evs[-1]["test_accuracy"] and m["val_accuracy_last_epoch"] == evs[-1]["val_accuracy"]
    assert m["test_accuracy"] == evs[m["best_epoch"] - 1]["test_accuracy"]
    assert m["val_accuracy"] == max(ev["val_accuracy"] for ev in evs)


def test_a_batched_paper_form_seed_is_its_own_run_without_dropout(tmp_path):
    cfg = {"form": "paper", "hidden": 8, "max_iter": 3, "dropout": 0.0}
    graph = {**GRAPH, "csbm_nodes": 120}
    batched = train_seeds("pign", cfg, graph, {"epochs": 8, "patience": 100}, [0, 1])
    for s, b in enumerate(batched):
        single = train("pign", cfg, graph, {"epochs": 8, "patience": 100, "seed": s})
        for key in ("best_epoch", "test_accuracy", "test_accuracy_last_epoch", "val_accuracy_last_epoch"):
            assert b[key] == single[key], (s, key)


def test_gat_paper_form_learns_with_dropout_in_the_loop():
    m = train("pign", {"form": "paper", "backbone": "gat", "hidden": 8, "heads": 2, "max_iter": 3, "dropout": 0.3},
              {**GRAPH, "csbm_nodes": 120}, {"epochs": 40, "patience": 100, "lr": 0.02})
    assert m["test_accuracy"] > 0.6  # 3 classes, chance 1/3


def test_dropout_at_nowhere_is_allowed():
    assert from_dict(PIGNConfig, {"form": "paper", "dropout_at": ""}).dropout_sites() == frozenset()


def test_iterate_and_check_contraction_say_what_the_paper_form_means(tmp_path):
    runner = CliRunner()
    args = ["train", "pign", "--form", "paper", "--hidden", "8", "--max-iter", "3", "--dataset", "csbm", "--csbm-nodes", "120",
            "--epochs", "10", "--out", str(tmp_path), "--json", "--device", "cpu"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)
    res = runner.invoke(app, ["iterate", str(tmp_path / "ckpt.pt"), "--max-iter", "8", "--json", "--device", "cpu"])
    assert res.exit_code == 1, res.output  # tol 0: never converged, the check fails
    doc = json.loads(res.stdout)
    assert doc["trained_depth"] == 3 and len(doc["iterations"]) == 9 and doc["converged_at"] is None  # tol 0: every step runs
    assert doc["iterations"][3]["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)  # the trained answer
    text = runner.invoke(app, ["iterate", str(tmp_path / "ckpt.pt"), "--max-iter", "5", "--plot", str(tmp_path / "it.png")])
    assert "3 (trained)" in text.stdout and "truncated iteration" in text.stdout
    assert (tmp_path / "it.png").read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(app, ["check-contraction", str(tmp_path / "ckpt.pt"), "--samples", "3", "--iters", "10", "--json"])
    assert res.exit_code in (0, 1), res.output
    assert json.loads(res.stdout)["trained_depth"] == 3
