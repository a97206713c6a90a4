"""Experiment tracking (fixpt.tracking): sweeps and runs logged to real local TensorBoard and MLflow stores
and read back with their own readers (TensorBoard's EventAccumulator, MLflow's client on a file store),
against each run's history.csv and metrics.json; a resumed run continues its tracked run; a missing
library is a one-line error before any training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from fixpt.cli import app  # noqa: E402
from fixpt.tracking import TrackerSpec  # noqa: E402
from fixpt.train import train  # noqa: E402
from fixpt.training.rundir import RunDir  # noqa: E402
from test_resume import Killed, kill_at  # noqa: E402

runner = CliRunner()
PRESET = "model: pign\nseeds: 2\nbase: {dataset: csbm, csbm_nodes: 200, hidden: 8, epochs: 3}\ngrid: {backbone: [gcn, sage]}\n"
PIGN, CSBM = {"hidden": 8, "dropout": 0.5}, {"dataset": "csbm", "csbm_nodes": 200}


@pytest.fixture
def file_store(tmp_path, monkeypatch):
    """A local MLflow file store (MLflow 3 asks for MLFLOW_ALLOW_FILE_STORE to write one)."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return f"file:{tmp_path / 'mlruns'}"


def sweep(*args) -> dict:
    res = runner.invoke(app, ["sweep", *map(str, args), "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def runs_of(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in (folder / "runs").iterdir()}


def test_a_sweep_with_mlflow_leaves_one_tagged_run_per_point(tmp_path, file_store):
    """Seed batches of 2 on 2 worker processes: the tracker travels to the workers and each seed is its own run."""
    (tmp_path / "p.yaml").write_text(PRESET)
    summary = sweep(tmp_path / "p.yaml", "--out", tmp_path / "sw", "--tracker", "mlflow", "--tracker-uri", file_store,
                    "--seed-batch", "2", "--workers", "2")
    assert summary["finished"] == 4
    sweep_id = json.loads((tmp_path / "sw" / "index.json").read_text())["sweep_id"]
    client = MlflowClient(tracking_uri=file_store)
    tracked = client.search_runs([client.get_experiment_by_name("p").experiment_id])
    folders = runs_of(tmp_path / "sw")
    assert sorted(r.data.tags["run_id"] for r in tracked) == sorted(folders)
    for r in tracked:
        folder = folders[r.data.tags["run_id"]]
        config, metrics = (json.loads((folder / f).read_text()) for f in ("config.json", "metrics.json"))
        assert r.info.status == "FINISHED" and r.data.tags["sweep_id"] == sweep_id and r.data.tags["sweep"] == "p"
        assert r.data.tags["grid.backbone"] == config["model_config"]["backbone"]
        assert r.data.tags["grid.seed"] == str(config["train"]["seed"]) and r.data.tags["seed_batch"] == "2"
        assert r.data.params["model.hidden"] == "8" and r.data.params["train.epochs"] == "3"
        history = RunDir(folder).read_history()
        for key in ("train_loss", "val_accuracy", "test_accuracy"):
            logged = client.get_metric_history(r.info.run_id, key)
            assert [(m.step, m.value) for m in logged] == [(row["epoch"], pytest.approx(row[key], rel=1e-12)) for row in history]
        assert r.data.metrics["final/test_accuracy"] == pytest.approx(metrics["test_accuracy"], rel=1e-12)
        assert [a.path for a in client.list_artifacts(r.info.run_id)] == ["ckpt.pt"]


def test_a_sweep_with_tensorboard_on_ray_leaves_readable_event_files(tmp_path):
    """On the Ray executor, with --tracker-uri: each run's events in <uri>/<run id>, with its checkpoint copied beside them."""
    pytest.importorskip("ray")
    (tmp_path / "p.yaml").write_text(PRESET.replace("seeds: 2", "seeds: 1"))
    summary = sweep(tmp_path / "p.yaml", "--out", tmp_path / "sw", "--tracker", "tensorboard", "--tracker-uri", tmp_path / "tb",
                    "--executor", "ray")
    assert summary["finished"] == 2
    sweep_id = json.loads((tmp_path / "sw" / "index.json").read_text())["sweep_id"]
    for run_id, folder in runs_of(tmp_path / "sw").items():
        events = EventAccumulator(str(tmp_path / "tb" / run_id))
        events.Reload()
        history = RunDir(folder).read_history()
        assert len(history) == 3
        for key in ("train_loss", "val_loss", "val_accuracy"):  # TensorBoard keeps scalars as float32
            assert [(e.step, e.value) for e in events.Scalars(key)] == [(row["epoch"], pytest.approx(row[key], rel=1e-6)) for row in history]
        metrics = json.loads((folder / "metrics.json").read_text())
        assert events.Scalars("final/test_accuracy")[0].value == pytest.approx(metrics["test_accuracy"], rel=1e-6)
        tags = events.Tensors("tags/text_summary")[0].tensor_proto.string_val[0].decode()
        assert f"| sweep_id | {sweep_id} |" in tags and f"| run_id | {run_id} |" in tags and "| grid.backbone |" in tags
        copy = tmp_path / "tb" / run_id / "artifacts" / "ckpt.pt"
        assert copy.read_bytes() == (folder / "ckpt.pt").read_bytes()


@pytest.mark.parametrize("kind", ["mlflow", "tensorboard"])
def test_a_resumed_run_continues_its_tracked_run(kind, tmp_path, file_store):
    """Killed at epoch 5 with a state every 2 epochs: epoch 5 is trained again after the resume. MLflow: the
    same run continues (and holds epoch 5 twice, with equal values); TensorBoard: the events after the
    saved state are purged, so each epoch appears once."""
    spec = TrackerSpec(kind, file_store if kind == "mlflow" else "", "resume-test").check()
    cfgs = (PIGN, CSBM, {"epochs": 8, "ckpt_every": 2})
    with pytest.raises(Killed):
        train("pign", *cfgs, out=tmp_path / "run", device="cpu", on_epoch=kill_at(5), tracker=spec)
    train("pign", PIGN, CSBM, {**cfgs[2], "resume": str(tmp_path / "run")}, device="cpu", tracker=spec)
    history = RunDir(tmp_path / "run").read_history()
    assert [r["epoch"] for r in history] == list(range(1, 9))
    if kind == "mlflow":
        client = MlflowClient(tracking_uri=file_store)
        (run,) = client.search_runs([client.get_experiment_by_name("resume-test").experiment_id])
        assert run.info.status == "FINISHED"
        logged = {(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val_loss")}
        assert logged == {(r["epoch"], r["val_loss"]) for r in history}
    else:
        events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
        events.Reload()
        assert [e.step for e in events.Scalars("val_loss")] == list(range(1, 9))
        assert [e.value for e in events.Scalars("val_loss")] == [pytest.approx(r["val_loss"], rel=1e-6) for r in history]


def test_the_ddpm_loop_logs_its_steps(tmp_path, file_store):
    pytest.importorskip("diffusers")
    from fixpt.diffusion.train_loop import train_ddpm

    tiny = {"max_steps": 4, "batch_size": 8, "warmup_steps": 2, "ckpt_every": 2, "log_every": 2, "samples": 0, "eval_timesteps": 3}
    train_ddpm("ddpm", {"timesteps": 20}, {}, tiny, out=tmp_path / "run", device="cpu",
               tracker=TrackerSpec("mlflow", file_store, "ddpm-test").check())
    history = RunDir(tmp_path / "run").read_history()
    assert [r["step"] for r in history] == [2, 4]
    client = MlflowClient(tracking_uri=file_store)
    (run,) = client.search_runs([client.get_experiment_by_name("ddpm-test").experiment_id])
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train_loss")] == \
        [(r["step"], pytest.approx(r["train_loss"], rel=1e-12)) for r in history]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert run.data.metrics["final/test_loss_area"] == pytest.approx(metrics["test_loss_area"], rel=1e-12)
    assert run.data.params["model.timesteps"] == "20" and run.data.tags["task"] == "image-generation"


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_a_missing_tracker_library_is_one_line_before_any_training(command, tmp_path):
    """The library made unimportable (``sys.modules[name] = None``, Python's own way to block an import)."""
    (tmp_path / "p.yaml").write_text(PRESET)
    args = {"train": ["train", "pign", "--dataset", "csbm", "--csbm-nodes", "200", "--epochs", "2", "--out", str(tmp_path / "out"),
                      "--tracker", "tensorboard"],
            "sweep": ["sweep", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "out"), "--tracker", "mlflow"]}[command]
    blocked = "tensorboard" if command == "train" else "mlflow"
    code = (f"import sys; sys.modules[{blocked!r}] = None; sys.argv = ['fixpt', *{args!r}]; "
            "from fixpt.cli import main; main()")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"error: --tracker {blocked} needs the {blocked} package: pip install 'fixpt[{blocked}]'"]
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_an_unknown_tracker_is_one_line(tmp_path):
    res = runner.invoke(app, ["train", "pign", "--dataset", "csbm", "--out", str(tmp_path / "out"), "--tracker", "wandb"])
    assert res.exit_code == 2 and "--tracker 'wandb' is not a tracker; use one of none, tensorboard, mlflow" in res.output
