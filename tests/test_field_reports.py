"""Field tasks in the paper's forms and what their reports show: the ViT iterating on pixels without a free
term on Navier-Stokes (checked against the formula by hand), the test-batch spread beside the seed spread, and
test error against training steps and FLOPs."""

import json

import numpy as np
import pytest
import scipy.io
import torch
from typer.testing import CliRunner

from fixpt.cli import app
from fixpt.train import build

runner = CliRunner()


@pytest.fixture(scope="module")
def mat_file(tmp_path_factory):
    """An FNO-format file of 10 random trajectories, 8 x 8, 8 times (a stand-in: shapes, not physics)."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("mat") / "ns.mat"
    scipy.io.savemat(path, {"a": rng.standard_normal((10, 8, 8)).astype(np.float32),
                            "u": rng.standard_normal((10, 8, 8, 8)).astype(np.float32)})
    return str(path)


@pytest.mark.parametrize("task, data", [("navier-stokes", {"in_frames": 2, "out_frames": 2}),
                                        ("ns-initial", {"horizon": 6, "frames": 4})])
def test_vit_pixel_iteration_is_the_damped_formula(mat_file, task, data):
    """x_0 = the input (ns-initial: the t = 0 field in every slot), x_{i+1} = (1 - l) T(x_i) + l x_i, l = 1/2,
    two steps by hand; ns-initial's T sees [x_i, u] (the input as extra channels)."""
    torch.manual_seed(0)
    _, _, model, d, _, _ = build("vit", {"iterate_on": "pixels", "n_iter": 2, "alpha": 0.5, "patch": 2},
                                 {"data_file": mat_file, **data}, torch.device("cpu"), task=task)
    model.eval()

    def t_map(x):
        inp = torch.cat((x, d.x), 1) if task == "ns-initial" else x
        return model.tokens.decode(model.encoder(model.tokens.encode(inp)))

    with torch.no_grad():
        out = model(d)
        x = d.x.expand(-1, d.y.shape[1], -1, -1) if task == "ns-initial" else d.x
        for _ in range(2):
            x = 0.5 * t_map(x) + 0.5 * x
    assert out.shape == d.y.shape and model.last_solution.n_iter == 2
    assert torch.allclose(out, x, atol=1e-5)
    assert not torch.allclose(out, d.x.expand_as(out), atol=1e-3)  # the iteration moved the image


def test_iterate_on_tokens_overrides_the_task(mat_file):
    _, _, model, _, _, _ = build("vit", {"iterate_on": "tokens"}, {}, torch.device("cpu"), task="masked-pixels")
    assert not model.pixels
    res = runner.invoke(app, ["train", "vit", "--task", "ns-initial", "--data-file", mat_file, "--horizon", "6", "--frames", "4",
                              "--iterate-on", "pixels", "--variant", "vit-3d", "--epochs", "1"])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "not vit-3d" in lines[0], res.output


@pytest.fixture(scope="module")
def sweep_dir(mat_file, tmp_path_factory):
    """Two seeds of two ViTs on ns-initial (2 test trajectories: two batches of 1)."""
    out = tmp_path_factory.mktemp("sweep")
    preset = out / "p.yaml"
    preset.write_text(f"description: t\nreport: generic\nmodel: vit\nseeds: 2\nbase: {{task: ns-initial, data_file: '{mat_file}', "
                      "horizon: 6, frames: 4, epochs: 2, batch_size: 1, variant: vit-small, patch: 2}\ngrid: {n_iter: [1, 2]}\n")
    res = runner.invoke(app, ["sweep", str(preset), "--out", str(out / "sw")])
    assert res.exit_code == 0, res.output
    return out / "sw"


def _runs(sweep_dir):
    return [(p.parent, json.loads(p.read_text())) for p in sorted(sweep_dir.rglob("metrics.json"))]


def test_metrics_record_the_test_batch_spread(sweep_dir):
    """Recomputed from the checkpoint: each test batch of batch_size samples (stored order) scored on its own."""
    from fixpt.train import load_trained

    folder, metrics = _runs(sweep_dir)[0]
    trained = load_trained(folder / "ckpt.pt", device="cpu")
    d = trained.data
    idx = d.test_mask.nonzero().flatten()
    trained.model.eval()
    with torch.no_grad():
        mses = [float(((trained.model(d.subset(idx[i:i + 1])) - d.y[idx[i:i + 1]]) ** 2).mean()) for i in range(len(idx))]
    spread = metrics["spread_over_test_batches"]
    assert spread["batches"] == len(mses) == 2 and spread["batch_size"] == 1
    assert spread["mse_mean"] == pytest.approx(np.mean(mses), rel=1e-5)
    assert spread["mse_std"] == pytest.approx(np.std(mses), rel=1e-5) and spread["mse_std"] > 0


def test_report_shows_either_spread(sweep_dir):
    runs = _runs(sweep_dir)
    by_iter: dict[int, list[dict]] = {}
    for folder, m in runs:
        by_iter.setdefault(json.loads((folder / "config.json").read_text())["params"]["n_iter"], []).append(m)
    for spread in ("seeds", "test-batches"):
        res = runner.invoke(app, ["report", str(sweep_dir), "--format", "json", "--spread", spread])
        assert res.exit_code == 0, res.output
        cells = {c["row"]: c for c in json.loads(res.stdout)["cells"]}
        for n_iter, ms in by_iter.items():
            cell = cells[f"n_iter={n_iter}"]
            assert cell["seed_std"] == pytest.approx(np.std([m["test_mse"] for m in ms], ddof=1))
            assert cell["test_batch_std"] == pytest.approx(np.mean([m["spread_over_test_batches"]["mse_std"] for m in ms]))
            assert cell["std"] == cell["seed_std" if spread == "seeds" else "test_batch_std"]
    md = runner.invoke(app, ["report", str(sweep_dir), "--spread", "test-batches"]).stdout
    assert "± std over test batches" in md
    res = runner.invoke(app, ["report", str(sweep_dir), "--spread", "test-batches", "--protocol", "last-epoch"])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "--protocol best-val" in lines[0], res.output


class _Rows:
    """A stand-in data set: rows of x and y, a train index, and subset() as the field data has."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def subset(self, index):
        return _Rows(self.x[index], self.y[index])


class _Linear(torch.nn.Linear):
    def forward(self, data):
        return super().forward(data.x)


class _MSETask:
    def loss(self, out, data, split="train"):
        return ((out - data.y) ** 2).mean()


def test_train_step_flops_of_a_linear_map():
    """One step of y = W x (no bias), batch B, W (o x i): forward 2 B i o, backward 2 B i o for dx and 2 B i o for
    dW (FlopCounterMode counts matrix products only); the model and the random state are left untouched."""
    import contextlib

    from fixpt.training.flops import train_step_cost

    model = _Linear(6, 3, bias=False)
    data = _Rows(torch.randn(20, 6, requires_grad=True), torch.randn(20, 3))
    before, state = model.weight.detach().clone(), torch.get_rng_state()
    cost = train_step_cost(model, _MSETask(), data, torch.arange(10), 4, contextlib.nullcontext)
    assert cost == {"train_flops_per_step": 3 * 2 * 4 * 6 * 3, "train_steps_per_epoch": 3}  # ceil(10 / 4) steps
    assert torch.equal(model.weight, before) and model.weight.grad is None and torch.equal(torch.get_rng_state(), state)


def test_curves_against_steps_and_flops(sweep_dir, tmp_path):
    """Per configuration and epoch: steps = epoch x steps per epoch, FLOPs = steps x the step's count, the score
    the mean of the seeds' history rows; --plot writes the figure."""
    from fixpt.report.curves import learning_curves
    from fixpt.report.runs import load_runs

    sweep = load_runs(sweep_dir)
    curves = learning_curves(sweep.runs, "mse", sweep.varying)
    assert set(curves) == {"vit n_iter=1", "vit n_iter=2"}
    for label, curve in curves.items():
        runs = [r for r in sweep.runs if f"n_iter={r.params['n_iter']}" in label]
        m = runs[0].metrics
        assert m["train_steps_per_epoch"] == 7 and m["train_flops_per_step"] > 0  # 7 training trajectories, batch 1
        steps, flops, scores = curve.points()
        assert steps == [7.0, 14.0] and flops == [s * m["train_flops_per_step"] for s in steps]
        rows = [[row["test_mse"] for row in csv_rows(r.folder / "history.csv")] for r in runs]
        assert scores == pytest.approx(np.mean(rows, axis=0))
    flops = {label: c.points()[1][0] for label, c in curves.items()}
    assert flops["vit n_iter=2"] > flops["vit n_iter=1"]  # two passes of the encoder cost more than one
    res = runner.invoke(app, ["report", str(sweep_dir), "--plot", str(tmp_path / "fig")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "fig" / "test_vs_compute.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_ablation_base_curve_is_labelled_as_its_table_row():
    from fixpt.report.curves import curve_label
    from fixpt.report.runs import FinishedRun

    base = FinishedRun("a", "anie", {"n_iter": 4, "seed": 0}, {}, "ns-initial")
    switched = FinishedRun("b", "anie", {"n_iter": 4, "residual": True, "seed": 0}, {}, "ns-initial")
    assert curve_label(base, ["residual"]) == "anie (defaults)"
    assert curve_label(switched, ["residual"]) == "anie residual=True"
    assert curve_label(base, []) == curve_label(base, ["seed"]) == "anie"
    plain = FinishedRun("c", "gnn", {"model": "gnn", "backbone": "pyg:GINConv", "seed": 0}, {}, "node-classification")
    assert curve_label(plain, ["model"]) == "gnn"  # runs of `fixpt train` carry their model as a parameter too
    assert curve_label(plain, ["model", "backbone"]) == "gnn backbone=pyg:GINConv"


def csv_rows(path):
    import csv

    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]
