"""--op-lr-scale: which parameters are the operator's, the step they take, and what it refuses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fixpt.errors import FixptError
from fixpt.registry import MODELS
from fixpt.seed_batch import unbatchable_reason
from fixpt.tasks import TASKS
from fixpt.train import train
from fixpt.training.build import build_model
from fixpt.training.config import TrainConfig
from fixpt.training.optimizer import make_optimizer, operator_parameters

from cli_checks import one_line_error, run as cli

GRAPH = {"dataset": "csbm", "csbm_nodes": 120, "csbm_features": 12, "csbm_degree": 5}


def build(name: str, model_cfg: dict, data_cfg: dict = GRAPH):
    spec = MODELS.get(name)
    model, data, _, _ = build_model(spec, TASKS.get(spec.task_for(None)), model_cfg, data_cfg, torch.device("cpu"))
    return model, data


def names(model, params) -> set[str]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    return {by_id[id(p)] for p in params}


@pytest.mark.parametrize("form", ["fixed-point", "paper"])
def test_the_operator_of_a_pign_is_its_block(form):
    model, data = build("pign", {"backbone": "sage", "hidden": 8, "form": form})
    block = {n for n, _ in model.named_parameters() if n.startswith("block.")}
    assert block == {"block.lin_l.weight", "block.lin_l.bias", "block.lin_r.weight"}
    assert names(model, operator_parameters(model, data)) == block  # not the encoder, whose f is held fixed


@pytest.fixture(scope="module")
def ns_file(tmp_path_factory):
    from fixpt.models.examples import tiny_navier_stokes_run
    return tiny_navier_stokes_run(tmp_path_factory.mktemp("ns"))["data_file"]


def test_the_operator_of_a_vit_is_the_iterated_encoder_in_token_mode_and_everything_in_pixel_mode(ns_file):
    data_cfg = {"data_file": ns_file, "in_frames": 2, "out_frames": 2}
    model, data = build("vit", {"n_iter": 2, "iterate_on": "tokens"}, data_cfg)
    batch = data.subset(torch.arange(2))
    found = names(model, operator_parameters(model, batch))
    assert found == {n for n, _ in model.named_parameters() if n.startswith("encoder.")}
    model, data = build("vit", {"n_iter": 2, "iterate_on": "pixels"}, data_cfg)
    # pixels: the step re-encodes the image, so every weight is read (the decoder head included)
    assert names(model, operator_parameters(model, data.subset(torch.arange(2)))) == {n for n, _ in model.named_parameters()}


def test_the_operator_of_anie_is_its_integral_operator(ns_file):
    model, data = build("anie", {"n_iter": 2}, {"data_file": ns_file, "in_frames": 2, "out_frames": 2})
    found = names(model, operator_parameters(model, data.subset(torch.arange(2))))
    assert found == {n for n, _ in model.named_parameters() if n.startswith("integral.")} and found


def first_adam_step(scale: float) -> tuple[float, float]:
    """The largest move of an operator parameter and of any other parameter in one Adam step at lr 0.01.
    Adam's first step moves every coordinate by lr * m / sqrt(v) = lr * sign(g) (where the gradient is far above
    eps), so the moves are the two learning rates themselves."""
    torch.manual_seed(0)
    model, data = build("pign", {"backbone": "sage", "hidden": 8})
    tcfg = TrainConfig(lr=0.01, weight_decay=0.0, op_lr_scale=scale)
    opt = make_optimizer(model, tcfg, lambda: data, "pign")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    F.cross_entropy(model(data)[data.train_mask], data.y[data.train_mask]).backward()
    opt.step()
    op = names(model, operator_parameters(model, data))
    moves = {n: float((p.detach() - before[n]).abs().max()) for n, p in model.named_parameters()}
    return max(v for n, v in moves.items() if n in op), max(v for n, v in moves.items() if n not in op)


def test_operator_weights_step_at_the_scaled_rate_and_the_rest_at_lr():
    op, rest = first_adam_step(0.1)
    assert op == pytest.approx(1e-3, rel=1e-3) and rest == pytest.approx(1e-2, rel=1e-3)
    op, rest = first_adam_step(1.0)
    assert op == pytest.approx(1e-2, rel=1e-3) and rest == pytest.approx(1e-2, rel=1e-3)


def test_scale_one_keeps_one_group_and_draws_nothing():
    model, data = build("pign", {"backbone": "sage", "hidden": 8})
    called = []
    opt = make_optimizer(model, TrainConfig(), lambda: called.append(1) or data, "pign")
    assert len(opt.param_groups) == 1 and not called  # as a resumed older run's Adam state expects


def test_a_trained_run_records_the_scale_and_its_operator_weights_move_less(tmp_path):
    """One full-batch epoch is one Adam step: the block's weights move by lr * scale, from the seed's initial weights."""
    runs = (1.0, 0.01)
    for s in runs:
        train("pign", {"backbone": "sage", "hidden": 8}, GRAPH, {"epochs": 1, "seed": 0, "op_lr_scale": s},
              out=tmp_path / str(s), device="cpu")
    ckpts = {s: torch.load(tmp_path / str(s) / "ckpt.pt", weights_only=False) for s in runs}
    assert {s: c["train"]["op_lr_scale"] for s, c in ckpts.items()} == {1.0: 1.0, 0.01: 0.01}
    weights = {s: c["state_dict"] for s, c in ckpts.items()}
    torch.manual_seed(0)
    init, _ = build("pign", {"backbone": "sage", "hidden": 8})
    move = {s: float((w["block.lin_l.weight"] - init.state_dict()["block.lin_l.weight"]).abs().max()) for s, w in weights.items()}
    assert move[0.01] == pytest.approx(1e-4, rel=1e-2) and move[1.0] == pytest.approx(1e-2, rel=1e-2)


def test_models_without_an_operator_refuse_the_scale(tmp_path):
    with pytest.raises(FixptError, match="--op-lr-scale needs a model solved by fixpt.solve"):
        train("gnn", {"hidden": 8}, GRAPH, {"epochs": 1, "op_lr_scale": 0.1}, out=tmp_path / "gnn", device="cpu")
    res = cli("train", "gnn", "--dataset", "csbm", "--csbm-nodes", "120", "--epochs", "1", "--op-lr-scale", "0.1",
              "--out", tmp_path / "cli")
    one_line_error(res, "--op-lr-scale", "leave it at 1")


def test_seed_batches_train_a_scaled_run_one_seed_at_a_time():
    assert "op-lr-scale" in unbatchable_reason("pign", {"backbone": "sage"}, {"op_lr_scale": 0.1})
    assert unbatchable_reason("pign", {"backbone": "sage"}, {"op_lr_scale": 1.0}) is None
