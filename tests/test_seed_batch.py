"""Seed-batched training: each seed of the batch is its own run (exactly, with dropout off), fails
alone, stops alone; the frozen solve equals the stopping one; sweeps group, split and resume batches."""

import json

import pytest
import torch
from typer.testing import CliRunner

from fixpt.cli import app
from fixpt.errors import FixptError
from fixpt.seed_batch import train_seeds, unbatchable_reason
from fixpt.solve import solve
from fixpt.train import train

DATA = {"dataset": "csbm", "csbm_nodes": 200}
TRAIN = {"epochs": 12, "patience": 2}  # patience 2: some seeds stop early, at different epochs

NO_DROPOUT = {
    "gnn-gcn": ("gnn", {"backbone": "gcn", "dropout": 0.0, "hidden": 16}),
    "gnn-gat": ("gnn", {"backbone": "gat", "dropout": 0.0, "hidden": 16}),
    "pign-gcn": ("pign", {"backbone": "gcn", "dropout": 0.0, "hidden": 16}),
    "pign-gat-last": ("pign", {"backbone": "gat", "dropout": 0.0, "attn_dropout": 0.0, "hidden": 16, "grad": "last"}),
    "itergnn-sage": ("itergnn", {"backbone": "sage", "dropout": 0.0, "hidden": 16}),
}


@pytest.mark.parametrize("case", list(NO_DROPOUT))
def test_a_batched_seed_is_its_own_run_without_dropout(case, tmp_path):
    """Without dropout nothing random is left after the initialisation, so seed s of the batch must
    follow `train --seed s` step for step: same best epoch, same stopping epoch, same scores, and
    weights equal up to float rounding (the batched products sum in another order)."""
    name, model_cfg = NO_DROPOUT[case]
    seeds = [0, 1, 2]
    outs = [tmp_path / f"s{s}" for s in seeds]
    batched = train_seeds(name, model_cfg, DATA, TRAIN, seeds, outs=outs)
    for s, b, out in zip(seeds, batched, outs):
        single = train(name, model_cfg, DATA, {**TRAIN, "seed": s}, out=tmp_path / f"single{s}")
        for key in ("best_epoch", "epochs_run", "val_accuracy", "test_accuracy", "train_accuracy"):
            assert b[key] == single[key], (case, s, key)
        assert b["val_loss"] == pytest.approx(single["val_loss"], rel=1e-5)
        assert b["seed_batch"] == 3
        w_b = torch.load(out / "ckpt.pt", weights_only=False)["state_dict"]
        w_s = torch.load(tmp_path / f"single{s}" / "ckpt.pt", weights_only=False)["state_dict"]
        assert w_b.keys() == w_s.keys()
        for k in w_b:
            assert torch.allclose(w_b[k], w_s[k], rtol=1e-4, atol=1e-5), (case, s, k)
        assert json.loads((out / "metrics.json").read_text())["test_accuracy"] == b["test_accuracy"]
    if case in ("itergnn-sage", "pign-gat-last"):  # seeds that stop apart leave the batch apart
        assert len({b["epochs_run"] for b in batched}) > 1


def test_seeds_of_a_batch_differ_with_dropout_and_train_well():
    """With dropout the seeds draw their own masks: different runs, each learning the task."""
    results = train_seeds("pign", {"backbone": "gcn", "hidden": 16}, DATA, {"epochs": 100, "patience": 100}, [0, 1, 2])
    accs = [r["test_accuracy"] for r in results]
    # 4 classes (chance 0.25); separate runs of these seeds score 0.93, 0.65 and 0.87
    assert sum(accs) / 3 > 0.75 and min(accs) > 0.5, accs
    assert len({r["val_loss"] for r in results}) == 3


def test_a_diverging_seed_fails_alone(monkeypatch):
    """Seed 1's weights are poisoned with inf: its loss is not finite at epoch 1, so it is reported
    as a divergence, and seeds 0 and 2 finish exactly as they would without it."""
    import fixpt.seed_batch as sb

    real_build = sb.build_model
    calls = []

    def poisoned_build(*args, **kwargs):
        out = real_build(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            with torch.no_grad():
                next(out[0].parameters()).fill_(float("inf"))
        return out

    name, model_cfg = NO_DROPOUT["gnn-gcn"]
    clean = train_seeds(name, model_cfg, DATA, TRAIN, [0, 2])
    monkeypatch.setattr(sb, "build_model", poisoned_build)
    results = train_seeds(name, model_cfg, DATA, TRAIN, [0, 1, 2])
    assert isinstance(results[1], FixptError) and "training loss became" in str(results[1])
    for a, b in zip((results[0], results[2]), clean):
        assert (a["val_accuracy"], a["best_epoch"], a["epochs_run"]) == (b["val_accuracy"], b["best_epoch"], b["epochs_run"])


def test_what_cannot_be_batched_is_named():
    assert unbatchable_reason("pign", {"solver": "anderson"}, {}) is not None
    assert "grad" in unbatchable_reason("pign", {"grad": "implicit"}, {})
    assert "contractive" in unbatchable_reason("pign", {"contractive": True}, {})
    assert "navier-stokes" in unbatchable_reason("vit", {}, {})
    assert unbatchable_reason("gnn", {"backbone": "gat"}, {}) is None
    with pytest.raises(FixptError, match="anderson"):
        train_seeds("pign", {"solver": "anderson"}, DATA, TRAIN, [0, 1])
    with pytest.raises(FixptError, match="distinct"):
        train_seeds("gnn", {}, DATA, TRAIN, [1, 1])


def test_the_frozen_solve_returns_the_stopping_solves_iterate():
    """Per sample, Picard frozen at convergence (no data-dependent stop) equals a separate solve of
    that sample that stops there: z = A z + b with contraction factors 0.3 and 0.9 converge at
    different iterations."""
    torch.manual_seed(0)
    A = torch.stack([0.3 * torch.eye(4), 0.9 * torch.eye(4)])
    b = torch.randn(2, 4)
    P = lambda z: torch.einsum("bij,bj->bi", A, z) + b  # noqa: E731
    frozen = solve(P, torch.zeros(2, 4), alpha=0.0, tol=1e-3, max_iter=200, frozen=True).z
    for i in range(2):
        alone = solve(lambda z, i=i: z @ A[i].T + b[i], torch.zeros(1, 4), alpha=0.0, tol=1e-3, max_iter=200)
        assert alone.converged and alone.n_iter < 200
        assert torch.equal(frozen[i], alone.z[0])
    with pytest.raises(FixptError, match="picard"):
        solve(P, torch.zeros(2, 4), method="anderson", frozen=True)


PRESET = """
report: table5
model: [gnn, pign]
seeds: 3
base: {epochs: 4, dataset: csbm, csbm_nodes: 120, hidden: 8}
grid: {backbone: [gcn]}
"""


def test_seed_batches_fall_back_to_single_runs_on_the_reference_kernels(tmp_path, monkeypatch):
    """FIXPT_KERNELS=reference: the reference kernels have no vmap rules, so --seed-batch trains every seed on
    its own instead of failing each batch."""
    from fixpt.sweep import load_preset, plan_jobs

    monkeypatch.setenv("FIXPT_KERNELS", "reference")
    preset = tmp_path / "p.yaml"
    preset.write_text(PRESET.replace("model: [gnn, pign]", "model: pign").replace("seeds: 3", "seeds: 2"))
    assert [len(j) for j in plan_jobs(load_preset(preset).runs, 2)] == [1, 1]
    res = CliRunner().invoke(app, ["sweep", str(preset), "--out", str(tmp_path / "sw"), "--seed-batch", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "sw" / "runs").glob("*/metrics.json"))) == 2


def test_sweep_with_seed_batches_groups_splits_and_resumes(tmp_path):
    from fixpt.sweep import load_preset, plan_jobs

    preset = tmp_path / "p.yaml"
    preset.write_text(PRESET)
    sweep = load_preset(preset)
    jobs = plan_jobs(sweep.runs, 2)
    assert sorted(len(j) for j in jobs) == [1, 1, 2, 2]  # per model: seeds [0, 1] and [2]
    assert all(len({r.model for r in j}) == 1 for j in jobs)
    assert [[r.params["seed"] for r in j] for j in jobs if len(j) == 2] == [[0, 1], [0, 1]]
    assert len(plan_jobs(sweep.runs, 1)) == 6

    out = tmp_path / "sw"
    runner = CliRunner()
    res = runner.invoke(app, ["sweep", str(preset), "--out", str(out), "--seed-batch", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["finished"] == 6
    metrics = [json.loads(p.read_text()) for p in sorted(out.glob("runs/*/metrics.json"))]
    assert sorted(m.get("seed_batch", 1) for m in metrics) == [1, 1, 2, 2, 2, 2]
    again = runner.invoke(app, ["sweep", str(preset), "--out", str(out), "--seed-batch", "2", "--json"])
    assert json.loads(again.stdout)["skipped"] == 6
    bad = runner.invoke(app, ["sweep", str(preset), "--out", str(out), "--seed-batch", "0"])
    assert bad.exit_code == 2 and "--seed-batch" in bad.output
