"""Nothing lost and no traceback when runs diverge or ids could collide (issue 15, items 2 and 4)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import fixpt.sweep as sw
from fixpt.cli import app
from fixpt.errors import FixptError

runner = CliRunner()
CSBM = ["--dataset", "csbm", "--csbm-nodes", "200", "--device", "cpu"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A trained PIGN, and two broken copies: block weights x 1e6 (the iteration overflows after a few
    steps) and NaN block weights (the first step is NaN)."""
    tmp = tmp_path_factory.mktemp("div")
    res = runner.invoke(app, ["train", "pign", *CSBM, "--hidden", "16", "--epochs", "2", "--out", str(tmp / "run")])
    assert res.exit_code == 0, res.output
    ckpt = torch.load(tmp / "run" / "ckpt.pt", weights_only=True)
    for name, factor in (("big", 1e6), ("nan", float("nan"))):
        state = {k: v * factor if k.startswith("block") else v for k, v in ckpt["state_dict"].items()}
        torch.save({**ckpt, "state_dict": state}, tmp / f"{name}.pt")
    return tmp


@pytest.mark.parametrize("solver", ["picard", "anderson"])
@pytest.mark.parametrize("as_json", [False, True])
def test_iterate_reports_divergence_with_exit_1(checkpoints, solver, as_json):
    args = ["iterate", str(checkpoints / "big.pt"), "--max-iter", "40", "--alpha", "0", "--solver", solver, "--device", "cpu"]
    res = runner.invoke(app, args + (["--json"] if as_json else []))
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output  # exit 1, not an uncaught exception
    if as_json:
        doc = json.loads(res.stdout)
        assert doc["diverged"] and all(r["residual"] is not None for r in doc["iterations"][1:])
    else:
        assert "diverged at iteration" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("name", ["big", "nan"])
def test_check_contraction_reports_divergence_with_exit_1(checkpoints, name):
    res = runner.invoke(app, ["check-contraction", str(checkpoints / f"{name}.pt"), "--device", "cpu", "--json"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    doc = json.loads(res.stdout)
    assert doc["verdict"] == "diverged" and doc["diverged_at"] >= 1 and doc["contractive"] is False


PRESET = "model: pign\nbase: {dataset: csbm, csbm_nodes: 200, hidden: 8, epochs: 1}\ngrid: {max_iter: [1, 2, 3, 4, 5, 6, 7, 8]}\n"


def test_colliding_ids_are_refused(tmp_path, monkeypatch):
    (tmp_path / "p.yaml").write_text(PRESET)
    assert len({r.id for r in sw.load_preset(tmp_path / "p.yaml").runs}) == 8
    monkeypatch.setattr(sw, "ID_HEX", 1)  # 16 ids for 8 configurations: a collision is certain (pigeonhole after 17)
    (tmp_path / "q.yaml").write_text(PRESET.replace("[1, 2, 3, 4, 5, 6, 7, 8]", str(list(range(1, 18)))))
    with pytest.raises(FixptError, match="run id collision"):
        sw.load_preset(tmp_path / "q.yaml")


def test_a_folder_holding_another_configuration_is_refused_and_old_ids_resume(tmp_path):
    (tmp_path / "p.yaml").write_text(PRESET)
    plan = sw.load_preset(tmp_path / "p.yaml")
    a, b = plan.runs[:2]
    counts = sw.run_sweep(plan, tmp_path / "sw", device="cpu", save_ckpt=False)
    assert counts["finished"] == 8
    folder = sw.run_dir(tmp_path / "sw", a).path
    shutil.copy(sw.run_dir(tmp_path / "sw", b).path / "config.json", folder / "config.json")  # b's config in a's folder
    with pytest.raises(FixptError, match="holds another configuration"):
        sw.status(tmp_path / "sw", a)
    own = json.dumps({"model": a.model, "params": a.params, **a.configs})
    legacy = folder.parent / a.id[: len(a.model) + 1 + sw.LEGACY_HEX]
    folder.rename(legacy)  # the folder as a sweep from before 16-digit ids named it
    (legacy / "config.json").write_text(own)
    assert sw.run_dir(tmp_path / "sw", a).path == legacy and sw.status(tmp_path / "sw", a) == "done"
    again = sw.run_sweep(plan, tmp_path / "sw", device="cpu", save_ckpt=False)
    assert again["skipped"] == 8 and again["finished"] == 0  # resumed, nothing rerun


def test_train_never_replaces_a_run_silently(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["train", "gnn", *CSBM, "--hidden", "8", "--epochs", "1"]
    assert runner.invoke(app, args + ["--out", "a"]).exit_code == 0
    before = (tmp_path / "a" / "metrics.json").read_text()
    res = runner.invoke(app, args + ["--out", "a", "--seed", "1"])
    assert res.exit_code == 2 and "already holds a run" in res.output and (tmp_path / "a" / "metrics.json").read_text() == before
    assert runner.invoke(app, args + ["--out", "a", "--seed", "1", "--overwrite"]).exit_code == 0
    for _ in range(3):  # the default folders of runs started within one second are distinct
        assert runner.invoke(app, args).exit_code == 0
    assert len(list((tmp_path / "runs").glob("gnn-*/metrics.json"))) == 3


def test_a_run_failing_before_its_first_file_leaves_no_empty_folder(tmp_path, monkeypatch):
    """`fixpt train` without --out makes runs/<model>-<time>-<hex> before training; a run that fails before
    writing anything (here: a --data-file that is not a MATLAB file, found when the data loads) removes that
    folder again instead of leaving it empty. The failure is one line, exit 2, not scipy's traceback."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.mat").write_text("not a MATLAB file")
    res = runner.invoke(app, ["train", "anie", "--task", "ns-initial", "--data-file", "bad.mat", "--epochs", "1", "--device", "cpu"])
    assert res.exit_code == 2 and "is not a readable MATLAB .mat file" in res.output, res.output
    assert not (tmp_path / "runs").exists()  # made for this run, and empty: removed too
    (tmp_path / "runs").mkdir()  # a runs/ that was there before stays
    res = runner.invoke(app, ["train", "anie", "--task", "ns-initial", "--data-file", "bad.mat", "--epochs", "1", "--device", "cpu"])
    assert res.exit_code == 2 and list((tmp_path / "runs").iterdir()) == []


@pytest.mark.parametrize("fresh, written, kept", [(True, False, False), (True, True, True), (False, False, True)])
def test_only_a_fresh_empty_folder_of_a_failed_run_is_removed(tmp_path, fresh, written, kept):
    from fixpt.training.rundir import removed_if_failed_empty

    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(FixptError), removed_if_failed_empty(folder, fresh):
        if written:
            (folder / "config.json").write_text("{}")
        raise FixptError("failed")
    assert folder.is_dir() == kept
    with removed_if_failed_empty(folder, fresh=True):  # a run that succeeds keeps its folder, even empty
        pass
    assert folder.is_dir() == kept


@pytest.mark.parametrize("command", [
    ["train", "gnn", *CSBM, "--epochs", "1", "--out", "{file}"],
    ["train", "gnn", *CSBM, "--epochs", "1", "--out", "{file}/sub"],
    ["sweep", "{preset}", "--out", "{file}/sw"],
    ["report", "{sweep}", "--plot", "{file}/figs"],
    ["iterate", "{ckpt}", "--plot", "{file}/it.png"],
    ["data", "navier-stokes", "--out", "{file}"],
    ["recycle", "run", "{fasta}", "--out", "{file}/preds", "--backend", "precomputed", "--predictions", "{fasta}"],
])
def test_an_output_in_the_way_fails_before_any_work(command, checkpoints, tmp_path):
    """A file where the output folder should be: one line, exit 2, before anything is trained or written."""
    (tmp_path / "f").write_text("a file")
    (tmp_path / "p.yaml").write_text(PRESET)
    (tmp_path / "t.fasta").write_text(">T\nMKV\n")
    subs = {"{file}": str(tmp_path / "f"), "{preset}": str(tmp_path / "p.yaml"), "{ckpt}": str(checkpoints / "run" / "ckpt.pt"),
            "{sweep}": str(checkpoints), "{fasta}": str(tmp_path / "t.fasta")}
    args = [next((a.replace(k, v) for k, v in subs.items() if k in a), a) for a in command]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit), res.output
    assert "a file is in the way" in res.output and len(res.output.strip().splitlines()) == 1, res.output


def test_user_text_is_never_read_as_markup(tmp_path, checkpoints):
    res = runner.invoke(app, ["iterate", "[/bold]m.pt"])  # was a MarkupError traceback
    assert res.exit_code == 2 and "[/bold]m.pt" in res.output and "Traceback" not in res.output, res.output
    res = runner.invoke(app, ["iterate", "runs/[red]x[/red]/ckpt.pt"])  # was reported as runs/x/ckpt.pt
    assert res.exit_code == 2 and "runs/[red]x[/red]/ckpt.pt" in res.output, res.output
    res = runner.invoke(app, ["sweep", "table5", "--set", "backbone"])  # fixpt's own hint survives
    assert res.exit_code == 2 and "--set backbone=[gcn,sage]" in res.output, res.output
    folder = tmp_path / "[red]out[/red]"
    res = runner.invoke(app, ["train", "gnn", *CSBM, "--hidden", "8", "--epochs", "1", "--out", str(folder)])
    assert res.exit_code == 0 and f"wrote {folder / 'ckpt.pt'}" in res.output.replace("\n", ""), res.output


def test_parallel_first_loads_of_cora_share_one_cache(tmp_path):
    """Six processes load Cora at once into an empty cache (as sweep workers do): the first builds it under
    the lock, the others wait and read it whole (before: 'PytorchStreamReader failed reading zip archive')."""
    import os
    import subprocess
    import sys

    if not (Path(os.environ.get("FIXPT_DATA", "")) / "planetoid" / "Cora" / "raw").is_dir():
        pytest.skip("needs FIXPT_DATA with planetoid/Cora/raw")
    code = "from fixpt.data.planetoid import load_planetoid; print(load_planetoid('cora').num_nodes)"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(6)]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1][-300:] for r in results]
    assert all(r[0].strip() == "2708" for r in results)


def test_a_changed_raw_file_of_the_same_size_is_noticed(tmp_path, monkeypatch):
    """The cache is keyed on the raw files' content: a file replaced by another of the same size is reprocessed."""
    import os

    from fixpt.data.planetoid import load_planetoid

    real = Path(os.environ.get("FIXPT_DATA", "")) / "planetoid" / "Cora" / "raw"
    if not real.is_dir():
        pytest.skip("needs FIXPT_DATA with planetoid/Cora/raw")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "root"
    shutil.copytree(real, root / "planetoid" / "Cora" / "raw")
    before = load_planetoid("cora", str(root)).y.clone()
    labels = root / "planetoid" / "Cora" / "raw" / "ind.cora.ty"  # the test labels: one-hot rows, same size when permuted
    import numpy as np
    import pickle as pk

    ty = pk.loads(labels.read_bytes(), encoding="latin1")
    raw_bytes = labels.read_bytes()
    assert raw_bytes.count(ty.tobytes()) == 1  # the array's bytes sit verbatim in the pickle
    labels.write_bytes(raw_bytes.replace(ty.tobytes(), np.roll(ty, 1, axis=1).tobytes()))  # other labels, same size
    assert len(labels.read_bytes()) == len(raw_bytes)
    after = load_planetoid("cora", str(root)).y
    assert not torch.equal(before, after)


@pytest.fixture()
def killer_plugin(monkeypatch):
    """tests/killer_family.py as a plugin (FIXPT_FAMILIES), in this process and in the sweep's workers; taken out after."""
    import os
    import sys

    from fixpt import registry

    here = str(Path(__file__).parent)
    monkeypatch.setenv("FIXPT_FAMILIES", "killer_family")
    monkeypatch.setenv("PYTHONPATH", here + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.syspath_prepend(here)
    registry.load_builtins()  # registered here too
    yield
    registry.MODELS.remove("killer")
    registry.TASKS.remove("killer-task")
    registry._loaded.discard("killer_family")
    sys.modules.pop("killer_family", None)  # so the next use registers it again


def test_a_dead_worker_fails_its_own_run_only(tmp_path, killer_plugin):
    """Two workers; the run with die=true SIGKILLs its worker. It alone fails; the runs that were in flight
    beside it, and every run after it, finish (before: BrokenProcessPool marked them failed or never ran them)."""
    (tmp_path / "k.yaml").write_text("model: killer\ngrid:\n  - {die: [false], value: [1, 2, 3]}\n  - {die: [true]}\n"
                                     "  - {die: [false], value: [4, 5, 6]}\n")
    res = runner.invoke(app, ["sweep", str(tmp_path / "k.yaml"), "--out", str(tmp_path / "sw"), "--workers", "2", "--json"])
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout)
    assert (summary["finished"], summary["failed"]) == (6, 1), summary
    (error,) = summary["errors"].values()
    assert "worker process died" in error


@pytest.mark.parametrize("damage", ["", "{trunc", "[1, 2]", '{"model": "pign", "test_accuracy": "high"}', "\x00\xff"])
def test_damaged_metrics_are_named_skipped_and_rerun(tmp_path, damage):
    (tmp_path / "p.yaml").write_text(PRESET.replace("[1, 2, 3, 4, 5, 6, 7, 8]", "[1, 2]"))
    out = tmp_path / "sw"
    assert runner.invoke(app, ["sweep", str(tmp_path / "p.yaml"), "--out", str(out), "--device", "cpu"]).exit_code == 0
    victim = sorted((out / "runs").glob("*/metrics.json"))[0]
    victim.write_bytes(damage.encode("latin1"))
    res = runner.invoke(app, ["report", str(out), "--format", "json"])
    assert res.exit_code == 0 and isinstance(res.exception, (SystemExit, type(None))), res.output
    assert f"warning: {victim}" in res.stderr.replace("\n", "") and len(json.loads(res.stdout)["cells"]) == 1
    res = runner.invoke(app, ["report", str(out), "--strict"])
    assert res.exit_code == 2 and str(victim) in res.output.replace("\n", "") and "Traceback" not in res.output
    res = runner.invoke(app, ["sweep", str(tmp_path / "p.yaml"), "--out", str(out), "--device", "cpu", "--json"])
    assert json.loads(res.stdout)["finished"] == 1  # the damaged run is redone, the other skipped
    assert json.loads(victim.read_text())["model"] == "pign"


def test_a_malformed_index_entry_is_named(tmp_path):
    (tmp_path / "p.yaml").write_text(PRESET.replace("[1, 2, 3, 4, 5, 6, 7, 8]", "[1]"))
    out = tmp_path / "sw"
    assert runner.invoke(app, ["sweep", str(tmp_path / "p.yaml"), "--out", str(out), "--device", "cpu"]).exit_code == 0
    index = json.loads((out / "index.json").read_text())
    index["runs"].append({"id": 7})
    (out / "index.json").write_text(json.dumps(index))
    res = runner.invoke(app, ["report", str(out), "--format", "json"])
    assert res.exit_code == 0 and "run entry 1 is malformed" in res.stderr.replace("\n", " "), res.output


BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize("where", ["top", "description", "base"])
def test_yaml_bombs_are_refused_at_once(tmp_path, where):
    import time

    text = {"top": BOMB + "model: pign\n", "description": "model: pign\ndescription: " + BOMB.replace("\n", "\n  ").replace("a: &a", "x: &a", 1),
            "base": "model: pign\nbase:\n  " + BOMB.replace("\n", "\n  ")}[where]
    (tmp_path / "bomb.yaml").write_text(text)
    start = time.perf_counter()
    res = runner.invoke(app, ["sweep", str(tmp_path / "bomb.yaml"), "--dry-run"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) <= 3 and time.perf_counter() - start < 20, res.output[:500]


def test_two_sweeps_on_one_folder_train_each_run_once(tmp_path, killer_plugin):
    """Three sweep processes started together on one folder split its runs: each run is trained exactly once."""
    import os
    import subprocess
    import sys

    (tmp_path / "k.yaml").write_text("model: killer\nbase: {sleep: 0.3}\ngrid: {value: [1, 2, 3, 4, 5, 6, 7, 8]}\n")
    cmd = [sys.executable, "-m", "fixpt", "sweep", str(tmp_path / "k.yaml"), "--out", str(tmp_path / "sw"), "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)) for _ in range(3)]
    summaries = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert sum(s["finished"] for s in summaries) == 8 and all(s["failed"] == 0 for s in summaries), summaries
    logs = sorted((tmp_path / "sw" / "runs").glob("*/trained.txt"))
    assert len(logs) == 8 and all(len(f.read_text().splitlines()) == 1 for f in logs)
    assert not list((tmp_path / "sw" / "runs").glob("*/claim.json"))  # every claim released


def test_a_stale_claim_is_taken_over(tmp_path, killer_plugin):
    import socket

    (tmp_path / "k.yaml").write_text("model: killer\ngrid: {value: [1]}\n")
    plan = sw.load_preset(tmp_path / "k.yaml")
    folder = sw.run_dir(tmp_path / "sw", plan.runs[0]).path
    folder.mkdir(parents=True)
    dead = subprocess_pid_that_exited()
    (folder / "claim.json").write_text(json.dumps({"host": socket.gethostname(), "pid": dead, "started": 0}))
    assert sw.run_sweep(plan, tmp_path / "sw", device="cpu")["finished"] == 1
    (folder / "metrics.json").unlink()
    (folder / "claim.json").write_text(json.dumps({"host": socket.gethostname(), "pid": __import__("os").getpid(), "started": 0}))
    assert sw.run_sweep(plan, tmp_path / "sw", device="cpu")["elsewhere"] == 1  # a live holder keeps it


def subprocess_pid_that_exited() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid
