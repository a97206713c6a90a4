"""--jac-penalty and --warm-start in training: what they change, what they record, what they refuse."""

from __future__ import annotations

import pytest
import torch

from fixpt.errors import FixptError
from fixpt.train import train
from fixpt.training.build import load_trained
from fixpt.contraction import lipschitz

GRAPH = {"dataset": "csbm", "csbm_nodes": 150, "csbm_features": 16, "csbm_degree": 6}
# an expansive starting point: no damping or normalisation keeps the block below 1
PIGN = {"backbone": "sage", "hidden": 16, "max_iter": 6}


def run(tmp_path, name, train_cfg, model=PIGN, model_name="pign"):
    return train(model_name, model, GRAPH, {"epochs": 40, "lr": 0.02, "seed": 0, **train_cfg}, out=tmp_path / name, device="cpu")


def local_norm(folder) -> float:
    trained = load_trained(folder / "ckpt.pt", device="cpu")
    model, data = trained.model, trained.data
    model.eval()
    with torch.no_grad():
        model(data)
    _, P = model.operator(data)
    return float(lipschitz(P, model.last_solution.z, generator=torch.Generator().manual_seed(0)).max())


def test_the_penalty_pushes_the_local_norm_below_its_target_and_records_it(tmp_path):
    plain = run(tmp_path, "plain", {})
    penalised = run(tmp_path, "pen", {"jac_penalty": 10.0, "jac_target": 0.5, "jac_steps": 2})
    assert "jac_norm_end" not in plain
    before, after = local_norm(tmp_path / "plain"), local_norm(tmp_path / "pen")
    assert before > 1.0  # the test means something: unpenalised, the block expands
    assert after < 0.6 and penalised["jac_norm_end"] == pytest.approx(after, rel=1e-3)
    assert penalised["jac_penalty_last"] >= 0 and penalised["jac_norm_last"] > 0


def test_frobenius_penalty_lowers_the_rms_singular_value(tmp_path):
    run(tmp_path, "plain", {})
    run(tmp_path, "fro", {"jac_penalty": 10.0, "jac_norm": "frobenius", "jac_target": 0.1})
    assert local_norm(tmp_path / "fro") < local_norm(tmp_path / "plain")


def test_penalty_and_warm_start_refuse_models_they_cannot_apply_to(tmp_path):
    with pytest.raises(FixptError, match="--jac-penalty needs a model solved by fixpt.solve"):
        run(tmp_path, "gnn", {"jac_penalty": 1.0}, model={"hidden": 8}, model_name="gnn")
    with pytest.raises(FixptError, match="--jac-penalty needs a model solved by fixpt.solve"):
        run(tmp_path, "itergnn", {"jac_penalty": 1.0}, model={"hidden": 8}, model_name="itergnn")
    with pytest.raises(FixptError, match="fixed number of iterations"):
        run(tmp_path, "paper", {"warm_start": True}, model={**PIGN, "form": "paper"})


def test_warm_start_saves_evaluations_and_reaches_the_same_fixed_point(tmp_path):
    contractive = {**PIGN, "contractive": True, "gamma": 0.8, "tol": 1e-6, "max_iter": 200, "dropout": 0.0}
    cold = run(tmp_path, "cold", {"epochs": 15}, model=contractive)
    warm = run(tmp_path, "warm", {"epochs": 15, "warm_start": True}, model=contractive)
    assert warm["operator_evaluations"] < 0.9 * cold["operator_evaluations"]  # measured: 15 % fewer here
    # a unique fixed point: the same accuracy from either start (the solve's tolerance is far below a class margin)
    assert warm["test_accuracy"] == pytest.approx(cold["test_accuracy"], abs=0.02)


def test_penalty_on_a_batched_field_model_records_per_sample_norms(tmp_path):
    """ANIE on a tiny Navier-Stokes set, through a sweep point: the penalty runs on a batch of samples
    (block-diagonal J) and records its estimates and the checkpoint's converged local norm."""
    import json

    from fixpt.models.examples import tiny_navier_stokes_run
    from fixpt.sweep import Run, execute, resolve

    run = Run(model="anie", params={**tiny_navier_stokes_run(tmp_path / "data"), "jac_penalty": 1.0, "jac_steps": 2})
    resolve(run)
    assert execute(run, tmp_path / "sweep", device="cpu", save_ckpt=True)["status"] == "done"
    metrics = json.loads((tmp_path / "sweep" / "runs" / run.id / "metrics.json").read_text())
    assert metrics["jac_norm_end"] > 0 and metrics["jac_norm_last"] > 0 and metrics["jac_penalty_last"] >= 0


def test_the_step_flops_count_the_penalty_and_grow_with_its_power_steps(tmp_path):
    """train_flops_per_step includes the penalty: every power step adds products (a jvp and a vjp through the
    operator), so the count is above the plain step's and grows with --jac-steps."""
    flops = {k: run(tmp_path, f"s{k}", {"epochs": 1, "jac_penalty": 1.0, "jac_steps": k})["train_flops_per_step"]
             for k in (1, 3, 5)}
    plain = run(tmp_path, "plain", {"epochs": 1})["train_flops_per_step"]
    assert plain < flops[1] < flops[3] < flops[5]
