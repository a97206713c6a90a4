"""A model family added by registering it, nothing else: a toy iterative model with its own task. ``train``,
``iterate``, ``check-contraction``, ``sweep`` and ``report`` must all work on it, through the same code
paths as the built-in families (the design's first rule: no command special-cases a model)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from fixpt.cli.root import make_app
from fixpt.models.base import IterativeModel
from fixpt.registry import MODELS, TASKS, register, register_task
from fixpt.tasks import InputSpec, Metric, Task
from fixpt.views import FIXED_POINT_VIEW

runner = CliRunner()


@dataclass
class ToyData:
    """Samples of a linear fixed-point problem z = A z + B x, with the sum of z* as the target."""

    x: torch.Tensor
    y: torch.Tensor
    train_mask: torch.Tensor
    val_mask: torch.Tensor
    test_mask: torch.Tensor

    def to(self, device):
        return ToyData(*(t.to(device) for t in (self.x, self.y, self.train_mask, self.val_mask, self.test_mask)))


@dataclass
class ToyDataConfig:
    samples: int = field(default=60, metadata={"help": "number of samples"})
    toy_seed: int = field(default=0, metadata={"help": "seed of the generated problem"})


def _toy_data(cfg: ToyDataConfig) -> ToyData:
    g = torch.Generator().manual_seed(cfg.toy_seed)
    x = torch.randn(cfg.samples, 4, generator=g)
    A = 0.5 * torch.linalg.qr(torch.randn(4, 4, generator=g))[0]  # ||A||_2 = 0.5: a contraction
    z = torch.linalg.solve(torch.eye(4) - A, x.T).T  # the exact fixed point of z = A z + x
    idx = torch.arange(cfg.samples)
    return ToyData(x, z.sum(1, keepdim=True), idx % 3 == 0, idx % 3 == 1, idx % 3 == 2)


class ToyRegression(Task):
    name = "toy-regression"
    data_config = ToyDataConfig
    metric = Metric("mse", higher_is_better=False)

    def load(self, data_config):
        return _toy_data(data_config)

    def input_spec(self, data) -> InputSpec:
        return InputSpec(data.x.shape[1], data.y.shape[1])

    def loss(self, out, data, split="train"):
        mask = getattr(data, f"{split}_mask")
        return F.mse_loss(out[mask], data.y[mask])

    def score(self, out, data, split, metric):
        return float(self.loss(out, data, split))


@dataclass
class ToyConfig:
    width: int = field(default=8, metadata={"help": "width of z"})
    max_iter: int = field(default=30, metadata={"help": "solver iterations"})
    alpha: float = field(default=0.3, metadata={"help": "damping"})


class ToyIterative(IterativeModel):
    """A toy fixed-point model z = 0.5 tanh(W z / ||W||_2) + U x."""

    def __init__(self, cfg: ToyConfig, in_dim: int, out_dim: int):
        super().__init__()
        self.cfg = cfg
        self.inp, self.W, self.out = nn.Linear(in_dim, cfg.width), nn.Linear(cfg.width, cfg.width, bias=False), nn.Linear(cfg.width, out_dim)

    def encode(self, data):
        return self.inp(data.x)

    def step(self, z, f, data):
        return 0.5 * torch.tanh(z @ (self.W.weight / torch.linalg.matrix_norm(self.W.weight, ord=2)).T) + f

    def decode(self, z, data):
        return self.out(z)

    def solver_options(self) -> dict:
        return dict(method="picard", alpha=self.cfg.alpha, tol=1e-6, max_iter=self.cfg.max_iter, grad="unroll", batched=True)

    def certified_lipschitz(self, data):
        return 0.5, "0.5 * Lip(tanh) * ||W / ||W||_2||_2 = 0.5"


@pytest.fixture(scope="module")
def toy_app():
    register_task(ToyRegression)
    register("toy-iterative", config=ToyConfig, task="toy-regression", view=FIXED_POINT_VIEW)(ToyIterative)
    yield make_app()
    MODELS.remove("toy-iterative")
    TASKS.remove("toy-regression")


def ok(app, *args):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


def test_every_command_works_on_a_registered_family(toy_app, tmp_path):
    res = ok(toy_app, "train", "toy-iterative", "--samples", 45, "--epochs", 5, "--lr", 0.01, "--out", tmp_path / "run", "--device", "cpu", "--json")
    metrics = json.loads(res.stdout)
    assert metrics["task"] == "toy-regression" and metrics["n_iter"] >= 1 and "test_mse_last_epoch" in metrics
    # the selection minimises the validation MSE (the task's direction): the best epoch has the lowest val_mse seen
    it = json.loads(ok(toy_app, "iterate", tmp_path / "run" / "ckpt.pt", "--max-iter", 40, "--tol", 1e-7, "--json").stdout)
    assert it["model"] == "toy-iterative" and it["iterations"][0]["mse"] is not None
    residuals = [r["residual"] for r in it["iterations"][1:]]
    assert residuals[-1] < residuals[0] * 1e-3  # a contraction: the residual falls geometrically
    assert abs(it["iterations"][-1]["mse"] - metrics["test_mse"]) < 1e-4  # the trained answer is the fixed point
    cc = json.loads(ok(toy_app, "check-contraction", tmp_path / "run" / "ckpt.pt", "--samples", 3, "--iters", 30, "--json").stdout)
    assert cc["verdict"] == "certified" and cc["certified_bound"] == pytest.approx(0.5) and cc["local_norm"]["max"] <= 0.5 + 1e-4
    preset = tmp_path / "toy.yaml"
    preset.write_text("model: toy-iterative\nseeds: 2\nbase: {epochs: 3, samples: 30}\ngrid: {width: [4, 8]}\n")
    ok(toy_app, "sweep", preset, "--out", tmp_path / "sw", "--device", "cpu")
    table = json.loads(ok(toy_app, "report", tmp_path / "sw", "--format", "json").stdout)
    cells = table["cells"]
    assert table["metric"] == "mse" and len(cells) == 2 and all(c["n"] == 2 for c in cells)  # one row per width, 2 seeds each
    best = [c for c in cells if c["best"]]
    assert len(best) == 1 and best[0]["mean"] == min(c["mean"] for c in cells)  # lower is better: the task says so


def test_the_task_decides_the_direction_of_selection(toy_app):
    from fixpt.train import train

    seen = []
    metrics = train("toy-iterative", {}, {"samples": 30}, {"epochs": 6, "lr": 0.05, "patience": 100}, device="cpu",
                    on_epoch=lambda e, ev: seen.append(ev["val_mse"]))
    assert metrics["val_mse"] == pytest.approx(min(seen)) and metrics["best_epoch"] == 1 + seen.index(min(seen))
