"""Resume for the epoch loop (PIGN, ViT, ANIE, ...): a run killed at any moment and continued with
``--resume DIR`` repeats the uninterrupted run's history, metrics and weights exactly; history.csv keeps
its rows through a kill; conflicting options on resume are one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fixpt.cli import app
from fixpt.data.navier_stokes import NavierStokesConfig, generate
from fixpt.train import train
from fixpt.training.resume import STATE_FILE
from fixpt.training.rundir import RunDir

runner = CliRunner()
PIGN_FLAGS = ["--dataset", "csbm", "--csbm-nodes", "200", "--hidden", "8", "--dropout", "0.5", "--device", "cpu"]
PIGN, CSBM = {"hidden": 8, "dropout": 0.5}, {"dataset": "csbm", "csbm_nodes": 200}


@pytest.fixture(scope="module")
def ns_file(tmp_path_factory):
    """12 trajectories, 4 frames at 16 x 16 (8 for training: two minibatches of 4 in a random order each epoch)."""
    return str(generate(NavierStokesConfig(n_samples=12, resolution=16, fine=16, t_final=4, dt=1e-3), tmp_path_factory.mktemp("ns")))


def _history(folder: Path) -> list[dict]:
    return RunDir(folder).read_history()


def _mark(folder: Path) -> None:
    """Overwrite the first stored history row's loss with 123: a resumed run keeps the history of its state (a
    run that silently started again would recompute it), so the mark tells the two apart."""
    state = torch.load(folder / STATE_FILE, weights_only=True)
    state["history"][0]["train_loss"] = 123.0
    torch.save(state, folder / STATE_FILE)


def _same_run(resumed: Path, full: Path) -> None:
    """The resumed run's history (past the marked row), metrics and weights are the uninterrupted run's, bit for bit."""
    a, b = _history(resumed), _history(full)
    assert a[0]["train_loss"] == 123.0 and len(a) == len(b)
    assert a[1:] == b[1:]
    ma, mb = (json.loads((f / "metrics.json").read_text()) for f in (resumed, full))
    assert {k: v for k, v in ma.items() if k != "seconds"} == {k: v for k, v in mb.items() if k != "seconds"}
    wa, wb = (torch.load(f / "ckpt.pt", weights_only=True)["state_dict"] for f in (resumed, full))
    for k in wb:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)
    assert not (resumed / STATE_FILE).exists()  # a complete run keeps no training state


def _kill_after_first_state(cmd: list[str], folder: Path, epochs: int) -> None:
    """Start ``cmd``, SIGKILL it as soon as its first training state exists, and check it died mid-run."""
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while not (folder / STATE_FILE).exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (folder / STATE_FILE).exists() and not (folder / "metrics.json").exists()
    assert len(_history(folder)) < epochs, "the run finished before it could be killed; the test needs a longer run"


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fixpt", "train", *args], env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True)


@pytest.mark.parametrize("family", ["pign", "vit"])
def test_a_sigkilled_run_resumes_to_the_uninterrupted_history(family, ns_file, tmp_path):
    if family == "pign":  # full batch, with dropout: the resumed masks must be the uninterrupted run's
        flags, epochs = ["pign", *PIGN_FLAGS, "--epochs", "80", "--ckpt-every", "3"], 80
    else:  # minibatches of 4 in a random order: the resumed order must be the uninterrupted run's
        flags, epochs = ["vit", "--variant", "vit-small", "--n-iter", "2", "--data-file", ns_file, "--in-frames", "2",
                         "--out-frames", "2", "--batch-size", "4", "--epochs", "40", "--device", "cpu"], 40
    full = _cli([*flags, "--out", str(tmp_path / "full"), "--json"])
    assert full.returncode == 0, full.stderr
    _kill_after_first_state([sys.executable, "-m", "fixpt", "train", *flags, "--out", str(tmp_path / "killed")], tmp_path / "killed", epochs)
    _mark(tmp_path / "killed")
    resumed = _cli([family, "--resume", str(tmp_path / "killed"), "--device", "cpu", "--json"])
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["out"] == str(tmp_path / "killed")
    _same_run(tmp_path / "killed", tmp_path / "full")


class Killed(Exception):
    pass


def kill_at(epoch: int):
    """An ``on_epoch`` that kills the run (raises) at the end of ``epoch``, after its state is saved."""
    def on_epoch(e, ev):
        if e == epoch:
            raise Killed
    return on_epoch


def test_anie_killed_between_states_trains_the_lost_epochs_again(ns_file, tmp_path):
    """A state every 2 epochs, killed at epoch 5: the resumed run starts again after epoch 4, and the rows the
    killed process wrote after that state are replaced by the retrained ones."""
    data = {"data_file": ns_file, "in_frames": 2, "out_frames": 2}
    cfgs = ({"n_iter": 2}, data, {"epochs": 6, "batch_size": 4, "ckpt_every": 2})
    train("anie", *cfgs, out=tmp_path / "full", device="cpu")
    with pytest.raises(Killed):
        train("anie", *cfgs, out=tmp_path / "killed", device="cpu", on_epoch=kill_at(5))
    assert len(_history(tmp_path / "killed")) == 5  # the rows survive the kill
    assert torch.load(tmp_path / "killed" / STATE_FILE, weights_only=True)["epoch"] == 4
    _mark(tmp_path / "killed")
    train("anie", {}, {}, {"resume": str(tmp_path / "killed")}, device="cpu")
    _same_run(tmp_path / "killed", tmp_path / "full")


def test_an_early_stopped_run_resumes_its_patience(tmp_path):
    """Patience 3 runs out before the last epoch: the resumed run stops at the same epoch with the same best epoch."""
    cfgs = (PIGN, CSBM, {"epochs": 60, "patience": 3, "lr": 0.05, "ckpt_every": 1})
    full = train("pign", *cfgs, out=tmp_path / "full", device="cpu")
    assert full["epochs_run"] < 60
    with pytest.raises(Killed):
        train("pign", *cfgs, out=tmp_path / "killed", device="cpu", on_epoch=kill_at(full["epochs_run"] - 1))
    _mark(tmp_path / "killed")
    train("pign", *cfgs[:2], {**cfgs[2], "resume": str(tmp_path / "killed")}, device="cpu")
    _same_run(tmp_path / "killed", tmp_path / "full")


def test_a_killed_sweep_point_continues_from_its_state(tmp_path):
    from fixpt import sweep as sw

    (tmp_path / "p.yaml").write_text("model: pign\nbase: {dataset: csbm, csbm_nodes: 200, hidden: 8, dropout: 0.5, epochs: 12, ckpt_every: 3}\n")
    plan = sw.load_preset(tmp_path / "p.yaml")
    (run,) = plan.runs
    folder = sw.run_dir(tmp_path / "sweep", run).path
    c = run.configs
    with pytest.raises(Killed):
        train(run.model, c["model_config"], c["data"], c["train"], out=folder, device="cpu", on_epoch=kill_at(7))
    _mark(folder)
    counts = sw.run_sweep(plan, tmp_path / "sweep", device="cpu")
    assert counts["finished"] == 1 and counts["failed"] == 0
    train(run.model, c["model_config"], c["data"], c["train"], out=tmp_path / "whole", device="cpu")
    _same_run(folder, tmp_path / "whole")


def test_resume_errors_are_one_line(tmp_path):
    res = runner.invoke(app, ["train", "pign", "--resume", str(tmp_path)])
    assert res.exit_code == 2 and "no train_state.pt" in res.output
    with pytest.raises(Killed):
        train("pign", PIGN, CSBM, {"epochs": 5, "ckpt_every": 1}, out=tmp_path / "run", device="cpu", on_epoch=kill_at(2))
    res = runner.invoke(app, ["train", "pign", "--resume", str(tmp_path / "run"), "--hidden", "16", "--device", "cpu"])
    assert res.exit_code == 2 and "--hidden 16 conflicts with the run being resumed (hidden=8)" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = runner.invoke(app, ["train", "gnn", "--resume", str(tmp_path / "run"), "--device", "cpu"])
    assert res.exit_code == 2 and "trains pign on task node-classification" in res.output
    train("pign", PIGN, CSBM, {"epochs": 2}, out=tmp_path / "done", device="cpu")
    res = runner.invoke(app, ["train", "pign", "--resume", str(tmp_path / "done")])
    assert res.exit_code == 2 and "the run there is complete" in res.output
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / STATE_FILE).write_bytes(b"not a state")
    res = runner.invoke(app, ["train", "pign", "--resume", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "damaged" in res.output


def test_history_keeps_its_rows_through_a_cut_last_line(tmp_path):
    """A writer killed in the middle of a row leaves a line without its newline: readers skip it and the next
    append replaces it; every earlier row is intact."""
    folder = RunDir(tmp_path)
    folder.append_history({"epoch": 1, "train_loss": 0.5})
    folder.append_history({"epoch": 2, "train_loss": 0.25})
    with open(tmp_path / "history.csv", "a") as f:
        f.write("3,0.1")  # the kill
    assert folder.read_history() == [{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.25}]
    folder.append_history({"epoch": 3, "train_loss": 0.125})
    assert [r["epoch"] for r in folder.read_history()] == [1, 2, 3]
    assert (tmp_path / "history.csv").read_text().splitlines()[0] == "epoch,train_loss"


def test_a_run_with_the_jacobian_penalty_and_warm_starts_resumes_exactly(tmp_path):
    """The power vector, the penalty's generator and the warm starts travel in train_state.pt: without them the
    resumed run would draw a new power vector and start its solves from f, and its history would differ. The
    operator's own learning rate (two Adam groups) is rebuilt before Adam's state is loaded into it."""
    model = {**PIGN, "contractive": True, "tol": 1e-4, "max_iter": 40}
    cfgs = (model, CSBM, {"epochs": 8, "ckpt_every": 1, "jac_penalty": 1.0, "jac_norm": "spectral", "warm_start": True,
                          "op_lr_scale": 0.3})
    train("pign", *cfgs, out=tmp_path / "full", device="cpu")
    with pytest.raises(Killed):
        train("pign", *cfgs, out=tmp_path / "killed", device="cpu", on_epoch=kill_at(4))
    _mark(tmp_path / "killed")
    train("pign", *cfgs[:2], {**cfgs[2], "resume": str(tmp_path / "killed")}, device="cpu")
    _same_run(tmp_path / "killed", tmp_path / "full")
