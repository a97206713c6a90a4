"""LRGB PascalVOC-SP: the real loader and its macro F1, on a small data set written in the LRGB raw format."""

import pickle
import pytest
import torch
from typer.testing import CliRunner

from fixpt.cli import app
from fixpt.data.graph import GraphDataConfig, load_graph
from fixpt.errors import FixptError
from fixpt.registry import get_spec
from fixpt.tasks import get_task
from fixpt.tasks.node_classification import macro_f1
from fixpt.train import count_parameters, fit_hidden

SIZES = {"train": 12, "val": 4, "test": 5}


def make_graph(g: torch.Generator, n: int):
    """One superpixel-like graph: 14 features whose first 3 encode the label, edges to near nodes."""
    y = torch.randint(0, 5, (n,), generator=g)
    x = torch.randn(n, 14, generator=g) * 0.3
    x[:, :5] += torch.nn.functional.one_hot(y, 5).float()
    src = torch.arange(n - 1)
    edge_index = torch.stack([torch.cat([src, src + 1]), torch.cat([src + 1, src])])
    edge_attr = torch.rand(edge_index.shape[1], 2, generator=g)
    return x.double(), edge_attr, edge_index, y.tolist()  # as the release: y a plain list


@pytest.fixture(scope="module")
def lrgb_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    raw = root / "lrgb" / "pascalvoc-sp" / "raw"
    raw.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    graphs = {s: [make_graph(g, int(torch.randint(8, 30, (1,), generator=g))) for _ in range(k)] for s, k in SIZES.items()}
    for s, gs in graphs.items():
        with open(raw / f"{s}.pickle", "wb") as f:
            pickle.dump(gs, f)
    return root, graphs


def test_loader_builds_the_disjoint_union_with_split_masks(lrgb_root):
    root, graphs = lrgb_root
    data = load_graph(GraphDataConfig(dataset="pascalvoc-sp", data_root=str(root)))
    sizes = {s: sum(g[0].shape[0] for g in gs) for s, gs in graphs.items()}
    assert data.num_nodes == sum(sizes.values()) and data.num_classes == 21
    assert get_task("node-classification").metric_for(GraphDataConfig(dataset="pascalvoc-sp")).name == "f1"
    for s, n in sizes.items():
        assert int(getattr(data, f"{s}_mask").sum()) == n
    assert bool((data.train_mask.long() + data.val_mask.long() + data.test_mask.long() == 1).all())
    assert bool((data.graph[data.edge_index[0]] == data.graph[data.edge_index[1]]).all())  # no edge between graphs
    first = graphs["train"][0]
    assert torch.allclose(data.x[: first[0].shape[0]], first[0].float())
    assert data.y[: len(first[3])].tolist() == first[3]
    assert data.edge_index.shape[1] == sum(g[2].shape[1] for gs in graphs.values() for g in gs)


def test_missing_raw_files_name_the_folder(tmp_path):
    with pytest.raises(FixptError, match=r"lrgb/pascalvoc-sp/raw"):
        load_graph(GraphDataConfig(dataset="pascalvoc-sp", data_root=str(tmp_path)))


def _f1_by_hand(pred, target):
    labels = sorted(set(pred) | set(target))
    scores = []
    for c in labels:
        tp = sum(p == c and t == c for p, t in zip(pred, target))
        fp = sum(p == c and t != c for p, t in zip(pred, target))
        fn = sum(p != c and t == c for p, t in zip(pred, target))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def test_macro_f1_matches_a_direct_count():
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        target = torch.randint(0, 6, (200,), generator=g)
        pred = torch.where(torch.rand(200, generator=g) < 0.6, target, torch.randint(0, 8, (200,), generator=g))
        assert macro_f1(pred, target, 8) == pytest.approx(_f1_by_hand(pred.tolist(), target.tolist()), abs=1e-12)
    assert macro_f1(torch.tensor([1, 1]), torch.tensor([1, 1]), 3) == 1.0
    # one class always wrong: F1 (1, 0) averaged over the two labels seen
    assert macro_f1(torch.tensor([0, 0]), torch.tensor([0, 1]), 3) == pytest.approx((2 / 3 + 0) / 2)
    sklearn = pytest.importorskip("sklearn.metrics")
    target, pred = torch.randint(0, 21, (500,), generator=g), torch.randint(0, 21, (500,), generator=g)
    assert macro_f1(pred, target, 21) == pytest.approx(sklearn.f1_score(target, pred, average="macro"), abs=1e-12)


def test_train_reports_f1(lrgb_root, tmp_path):
    root, _ = lrgb_root
    res = CliRunner().invoke(app, ["train", "pign", "--dataset", "pascalvoc-sp", "--data-root", str(root), "--epochs", "30",
                                   "--hidden", "16", "--dropout", "0", "--json", "--out", str(tmp_path), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    import json

    m = json.loads(res.stdout)
    assert 0.0 <= m["test_f1"] <= 1.0 and "test_accuracy" not in m
    assert m["train_f1"] > 0.5  # the label is in the features: learnable


@pytest.mark.parametrize("model, backbone", [("pign", "gcn"), ("pign", "gat"), ("gnn", "sage"), ("itergnn", "gcn")])
def test_param_budget_picks_the_widest_model_that_fits(model, backbone):
    spec = get_spec(model)
    cfg = spec.config(backbone=backbone)
    fitted = fit_hidden(spec, cfg, 14, 21, 500_000)
    step = 8
    size = lambda h: count_parameters(spec.cls(type(cfg)(**{**vars(cfg), "hidden": h}), 14, 21))  # noqa: E731
    assert fitted.hidden % step == 0
    assert size(fitted.hidden) <= 500_000 < size(fitted.hidden + step)


def test_a_seed_batch_scores_macro_f1_as_separate_runs_do(lrgb_root):
    """Seed batches score macro F1 (counted per class, one seed at a time) exactly as `train` does."""
    from fixpt.seed_batch import train_seeds
    from fixpt.train import train

    root, _ = lrgb_root
    data = {"dataset": "pascalvoc-sp", "data_root": str(root)}
    model_cfg, tcfg = {"backbone": "gcn", "hidden": 16, "dropout": 0.0}, {"epochs": 8, "patience": 8}
    batched = train_seeds("gnn", model_cfg, data, tcfg, [0, 1], device="cpu")
    for s, b in zip((0, 1), batched):
        single = train("gnn", model_cfg, data, {**tcfg, "seed": s}, device="cpu")
        assert "test_accuracy" not in b
        for key in ("best_epoch", "val_f1", "test_f1", "train_f1"):
            assert b[key] == single[key], (s, key)
