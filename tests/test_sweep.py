"""Presets, sweeps and their resumption: grid expansion, bad keys, failures, SIGKILL midway."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from fixpt.cli import app
from fixpt.errors import FixptError
from fixpt.presets import builtin_presets
from fixpt.sweep import load_preset, parse_set

runner = CliRunner()

TINY = """
report: table5
model: [gnn, pign]
seeds: 2
base: {epochs: 3, dataset: csbm, csbm_nodes: 120, hidden: 8}
grid: {backbone: [gcn, sage], noise: [0.0, 0.5]}
"""


def write(tmp_path, text, name="preset.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_grid_is_the_product_times_seeds(tmp_path):
    sweep = load_preset(write(tmp_path, TINY))
    assert len(sweep.runs) == 2 * 2 * 2 * 2  # models x backbones x noise x seeds
    assert len({r.id for r in sweep.runs}) == len(sweep.runs)
    assert sweep.varying == ["backbone", "noise", "model"]
    pign = [r for r in sweep.runs if r.model == "pign"][0]
    assert pign.configs["model_config"]["hidden"] == 8 and pign.configs["train"]["epochs"] == 3
    assert pign.configs["model_config"]["alpha"] == 0.5  # defaults are made explicit


def test_seeds_and_set_override(tmp_path):
    p = write(tmp_path, TINY)
    assert len(load_preset(p, seeds=5).runs) == 2 * 2 * 2 * 5
    sweep = load_preset(p, overrides=parse_set(["backbone=gat", "noise=[0.0, 0.2, 0.5]", "epochs=7"]))
    assert len(sweep.runs) == 2 * 3 * 2
    assert {r.params["backbone"] for r in sweep.runs} == {"gat"}
    assert {r.configs["train"]["epochs"] for r in sweep.runs} == {7}
    assert load_preset(p, overrides={"seed": 4}).runs[0].params["seed"] == 4  # one seed, as asked


def test_set_on_a_union_of_grids_replaces_the_axis_where_it_is(tmp_path):
    text = """
model: pign
base: {dataset: csbm}
grid:
  - {model: gnn, layers: [2]}
  - {max_iter: [1, 2, 4]}
"""
    sweep = load_preset(write(tmp_path, text), overrides=parse_set(["max_iter=[8,16]"]))
    assert sorted((r.model, r.params.get("max_iter")) for r in sweep.runs) == [("gnn", None), ("pign", 8), ("pign", 16)]
    sweep = load_preset(write(tmp_path, text), overrides=parse_set(["max_iter=3", "epochs=5"]))
    assert sorted((r.model, r.params.get("max_iter"), r.params["epochs"]) for r in sweep.runs) == [("gnn", None, 5), ("pign", 3, 5)]


def test_set_replaces_a_base_value_that_other_grids_take(tmp_path):
    """A key in the base and an axis of one grid: --set gives every run the value (the grids' runs then
    coincide and count once), so `--set iterate_on=pixels` on table2-plateau-cpu runs the pixel form only."""
    text = """
model: vit
base: {iterate_on: tokens, epochs: 1}
grid:
  - {n_iter: [1, 2]}
  - {n_iter: [1, 2], iterate_on: [pixels]}
"""
    assert len(load_preset(write(tmp_path, text)).runs) == 4
    sweep = load_preset(write(tmp_path, text), overrides=parse_set(["iterate_on=pixels"]))
    assert sorted((r.params["n_iter"], r.params["iterate_on"]) for r in sweep.runs) == [(1, "pixels"), (2, "pixels")]
    sweep = load_preset(write(tmp_path, text), overrides=parse_set(["iterate_on=[tokens,pixels]"]))
    assert len(sweep.runs) == 4


def test_run_ids_name_what_the_preset_says(tmp_path):
    a = load_preset(write(tmp_path, "model: pign\nbase: {noise: 0, dataset: csbm}", "a.yaml"))
    b = load_preset(write(tmp_path, "model: pign\nbase: {noise: 0.0, dataset: csbm}", "b.yaml"))
    assert [r.id for r in a.runs] == [r.id for r in b.runs]  # the same run, however the number is written
    c = load_preset(write(tmp_path, "model: pign\nbase: {noise: 0.1, dataset: csbm}", "c.yaml"))
    assert a.runs[0].id != c.runs[0].id


def test_union_of_grids(tmp_path):
    text = """
model: pign
base: {dataset: csbm}
grid:
  - {model: gnn, layers: [2, 3]}
  - {max_iter: [1, 2, 4]}
"""
    sweep = load_preset(write(tmp_path, text))
    assert sorted((r.model, r.params.get("layers"), r.params.get("max_iter")) for r in sweep.runs) == [
        ("gnn", 2, None), ("gnn", 3, None), ("pign", None, 1), ("pign", None, 2), ("pign", None, 4)]


def test_a_key_only_one_grid_sets_varies(tmp_path):
    """The authors' form of table4-initial is a second grid that sets switches to single values: its runs differ
    from the first grid's in those keys, so they vary (a report that left them out would pool the two forms
    as if they were seeds of one configuration)."""
    text = """
model: pign
base: {dataset: csbm}
grid:
  - {max_iter: [1, 4]}
  - {max_iter: [1, 4], alpha: [0.2], solver: [anderson]}
"""
    sweep = load_preset(write(tmp_path, text))
    assert sweep.varying == ["max_iter", "alpha", "solver"]
    assert load_preset(write(tmp_path, "model: pign\ngrid:\n  - {max_iter: [1, 4], alpha: [0.2]}\n")).varying == ["max_iter"]


@pytest.mark.parametrize("text, needle", [
    ("model: pign\nbase: {alhpa: 0.5}", "'alhpa'"),
    ("model: gnn\ngrid: {max_iter: [1, 2]}", "'max_iter' is not a config key of model 'gnn'"),
    ("model: pign\ngird: {alpha: [0.5]}", "unknown preset key 'gird'"),
    ("model: nope", "unknown model 'nope'"),
    ("model: pign\nbase: {backbone: gin}", "backbone"),
    ("model: pign\nreport: table9", "report must be one of"),
    ("model: pign\nseeds: 0", "seeds must be a positive integer"),
    ("base: {}", "name the model"),
    ("model: [pign\n", "not valid YAML"),
    ("model: pign\nbase: [alpha, 0.5]", "base must be a mapping"),
    ("model: pign\ngrid: [alpha]", "a grid must map config keys"),
])
def test_bad_presets_name_the_problem(tmp_path, text, needle):
    with pytest.raises(FixptError, match=None) as e:
        load_preset(write(tmp_path, text))
    assert needle in str(e.value)


@pytest.mark.parametrize("preset", builtin_presets())
def test_shipped_presets_expand(preset):
    sweep = load_preset(preset, seeds=1)  # by name: the preset shipped inside the package
    assert sweep.runs and sweep.description


def test_sweep_runs_records_and_resumes(tmp_path):
    p, out = write(tmp_path, TINY), tmp_path / "sw"
    res = run("sweep", p, "--out", out, "--json", "--device", "cpu")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert (summary["finished"], summary["skipped"], summary["failed"]) == (16, 0, 0)
    index = json.loads((out / "index.json").read_text())
    assert len(index["runs"]) == 16 and index["report"] == "table5"
    for r in index["runs"]:
        d = out / "runs" / r["id"]
        assert {"config.json", "metrics.json", "ckpt.pt"} <= {f.name for f in d.iterdir()}
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["model"] == r["model"] and cfg["train"]["seed"] == r["params"]["seed"]
    again = json.loads(run("sweep", p, "--out", out, "--json", "--device", "cpu").stdout)
    assert (again["finished"], again["skipped"]) == (0, 16)


def test_dry_run_writes_nothing_and_no_ckpt(tmp_path):
    p, out = write(tmp_path, TINY), tmp_path / "sw"
    res = run("sweep", p, "--out", out, "--dry-run", "--json")
    assert res.exit_code == 0 and not out.exists()
    plan = json.loads(res.stdout)
    assert len(plan["runs"]) == 16 and {r["status"] for r in plan["runs"]} == {"pending"}
    res = run("sweep", p, "--out", out, "--no-ckpt", "--set", "model=gnn", "--seeds", "1", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert not list(out.glob("runs/*/ckpt.pt")) and len(list(out.glob("runs/*/metrics.json"))) == 4


def test_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    text = """
model: gnn
seeds: 1
base: {epochs: 2, csbm_nodes: 100, data_root: %s}
grid: {dataset: [csbm, cora]}
""" % (tmp_path / "empty")
    out = tmp_path / "sw"
    res = run("sweep", write(tmp_path, text), "--out", out, "--device", "cpu")
    assert res.exit_code == 1, res.output
    assert "1 finished, 0 skipped (already complete), 1 failed" in res.stdout
    errors = list(out.glob("runs/*/error.json"))
    assert len(errors) == 1 and "planetoid" in json.loads(errors[0].read_text())["message"].lower()
    assert len(list(out.glob("runs/*/metrics.json"))) == 1


def test_workers_run_in_separate_processes(tmp_path):
    out = tmp_path / "sw"
    res = run("sweep", write(tmp_path, TINY), "--out", out, "--workers", "2", "--set", "model=gnn", "--json", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["finished"] == 8


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "seed_batch"), [(1, 1), (2, 1), (1, 2)])
def test_sigkill_midway_then_rerun_reports_every_run_once(tmp_path, workers, seed_batch):
    text = """
report: generic
model: pign
seeds: 6
base: {epochs: 60, dataset: csbm, csbm_nodes: 300, hidden: 16}
grid: {alpha: [0.5, 0.8]}
"""
    p, out = write(tmp_path, text), tmp_path / "sw"
    cmd = [sys.executable, "-m", "fixpt", "sweep", str(p), "--out", str(out), "--device", "cpu", "--workers", str(workers),
           "--seed-batch", str(seed_batch)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while len(list(out.glob("runs/*/metrics.json"))) < 3 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # the kernel delivers the workers' parent-death signal
    done_before = len(list(out.glob("runs/*/metrics.json")))
    time.sleep(3)
    assert len(list(out.glob("runs/*/metrics.json"))) == done_before, "worker processes outlived the sweep"
    assert 3 <= done_before < 12, "the sweep must be killed midway"
    res = subprocess.run(cmd + ["--json"], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["skipped"] == done_before and summary["finished"] == 12 - done_before
    report = run("report", out, "--format", "json")
    assert report.exit_code == 0, report.output
    cells = json.loads(report.stdout)["cells"]
    assert sorted(c["n"] for c in cells) == [6, 6]  # 12 runs, each reported exactly once
    index_ids = [r["id"] for r in json.loads((out / "index.json").read_text())["runs"]]
    assert len(index_ids) == len(set(index_ids)) == 12


def test_a_report_separates_runs_an_old_index_did_not_mark_as_varying():
    """Runs that differ in a parameter the index's varying list lacks (sweeps written before the fix above) are
    told apart by the report, which adds the parameters the finished runs disagree on."""
    from fixpt.report.runs import FinishedRun, _varying

    runs = [FinishedRun(str(i), "anie", {"n_iter": n, "seed": 0, **extra}, {}, None)
            for i, (n, extra) in enumerate([(1, {}), (4, {}), (1, {"residual": True}), (4, {"residual": True})])]
    assert _varying(["n_iter"], runs) == ["n_iter", "residual"]
    assert _varying(["n_iter"], runs[:2]) == ["n_iter"]
