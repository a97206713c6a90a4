"""``fixpt sweep --executor ray`` on a real local Ray instance: the same results as the local executor,
a killed worker fails its own run only, and a rerun resumes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("ray")

from fixpt.cli import app  # noqa: E402
from test_robustness import killer_plugin  # noqa: E402,F401  (the fixture)

runner = CliRunner()
PRESET = ("model: [gnn, pign]\nseeds: 2\nbase: {dataset: csbm, csbm_nodes: 200, hidden: 8, epochs: 3}\n"
          "grid: {backbone: [gcn, sage]}\n")


def sweep(*args):
    res = runner.invoke(app, ["sweep", *map(str, args), "--device", "cpu", "--json"])
    assert res.exit_code in (0, 1), res.output
    return res.exit_code, json.loads(res.stdout)


def scores(folder):
    return {p.parent.name: json.loads(p.read_text())["test_accuracy"] for p in (folder / "runs").glob("*/metrics.json")}


def test_ray_gives_the_local_executors_results_and_resumes(tmp_path):
    (tmp_path / "p.yaml").write_text(PRESET)
    code, local = sweep(tmp_path / "p.yaml", "--out", tmp_path / "local")
    assert code == 0 and local["finished"] == 8
    code, remote = sweep(tmp_path / "p.yaml", "--out", tmp_path / "ray", "--executor", "ray")
    assert code == 0 and remote["finished"] == 8, remote
    assert scores(tmp_path / "ray") == scores(tmp_path / "local")  # same runs, same ids, same accuracies
    table = {d: runner.invoke(app, ["report", str(tmp_path / d), "--format", "json"]).stdout for d in ("local", "ray")}
    assert json.loads(table["ray"])["cells"] == [
        {**c, "seconds_mean": json.loads(table["ray"])["cells"][i]["seconds_mean"]} for i, c in enumerate(json.loads(table["local"])["cells"])]
    code, again = sweep(tmp_path / "p.yaml", "--out", tmp_path / "ray", "--executor", "ray")
    assert code == 0 and again["skipped"] == 8 and again["finished"] == 0


def test_a_killed_ray_worker_fails_its_own_run_only(tmp_path, killer_plugin):  # noqa: F811
    (tmp_path / "k.yaml").write_text("model: killer\ngrid:\n  - {die: [false], value: [1, 2, 3]}\n  - {die: [true]}\n")
    code, summary = sweep(tmp_path / "k.yaml", "--out", tmp_path / "sw", "--executor", "ray")
    assert code == 1 and (summary["finished"], summary["failed"]) == (3, 1), summary
    (error,) = summary["errors"].values()
    assert "died" in error or "crash" in error.lower()
