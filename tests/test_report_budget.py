"""`fixpt report --budget`: each run scored at its best-validation epoch within a training cost, checked against
epochs picked by hand from the histories written here."""

import csv
import json

import pytest
from typer.testing import CliRunner

from fixpt.cli import app
from fixpt.report import make_report

runner = CliRunner()

# per run: (n_iter, seed, steps per epoch, FLOPs per step, [(val, test) per epoch 1, 2, ...])
RUNS = [
    (1, 0, 10, 100.0, [(0.50, 0.51), (0.30, 0.31), (0.20, 0.21), (0.25, 0.26), (0.10, 0.11), (0.12, 0.13)]),
    (1, 1, 10, 100.0, [(0.40, 0.41), (0.35, 0.36), (0.35, 0.30), (0.15, 0.16), (0.14, 0.15), (0.09, 0.08)]),
    (3, 0, 10, 300.0, [(0.45, 0.46), (0.20, 0.22), (0.18, 0.17), (0.08, 0.07), (0.05, 0.06), (0.04, 0.03)]),
    (3, 1, 10, 300.0, [(0.60, 0.61), (0.25, 0.24), (0.10, 0.12), (0.09, 0.10)]),  # stopped at epoch 4
]


def write_sweep(root, runs=RUNS, metric="mse", task="navier-stokes"):
    index = []
    for n_iter, seed, steps, flops, history in runs:
        rid = f"vit-{n_iter}-{seed}"
        params = {"n_iter": n_iter, "seed": seed}
        index.append({"id": rid, "model": "vit", "params": params})
        d = root / "runs" / rid
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"model": "vit", "params": params, "task": task}))
        best = min(range(len(history)), key=lambda i: history[i][0]) if metric == "mse" else max(range(len(history)), key=lambda i: history[i][0])
        (d / "metrics.json").write_text(json.dumps({
            f"val_{metric}": history[best][0], f"test_{metric}": history[best][1], "best_epoch": best + 1,
            "train_steps_per_epoch": steps, "train_flops_per_step": flops, "seconds": 1.0,
            "spread_over_test_batches": {f"{metric}_std": 0.5}}))
        with open(d / "history.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["epoch", "train_loss", f"val_{metric}", f"test_{metric}"])
            w.writerows([e + 1, 1.0, v, t] for e, (v, t) in enumerate(history))
    (root / "index.json").write_text(json.dumps({"name": "b", "report": "generic", "varying": ["n_iter", "seed"], "runs": index}))
    return root


def cells(root, budget):
    doc = json.loads(make_report(root, fmt="json", budget=budget).text)
    return doc, {c["row"]: c for c in doc["cells"] if not c.get("reference")}


def test_equal_steps_takes_each_runs_best_validation_epoch_within_the_budget(tmp_path):
    doc, by_row = cells(write_sweep(tmp_path), "steps=35")  # 10 steps an epoch: epochs 1-3
    assert doc["budget"] == "35 training steps"
    # n_iter 1: seed 0 best val 0.20 at epoch 3 (test 0.21); seed 1 0.35 at epochs 2 and 3, the earlier wins (0.36)
    assert by_row["n_iter=1"]["values"] == pytest.approx([0.21, 0.36]) and by_row["n_iter=1"]["budget_epochs"] == [3, 2]
    assert by_row["n_iter=3"]["values"] == pytest.approx([0.17, 0.12]) and by_row["n_iter=3"]["budget_epochs"] == [3, 3]
    assert "test_batch_std" not in by_row["n_iter=1"]  # measured on the final checkpoint only


def test_equal_flops_gives_the_cheaper_steps_more_epochs(tmp_path):
    _, by_row = cells(write_sweep(tmp_path), "flops=6000")  # n_iter 1: 1000 FLOPs an epoch (6 epochs); n_iter 3: 3000 (2)
    assert by_row["n_iter=1"]["values"] == pytest.approx([0.11, 0.08]) and by_row["n_iter=1"]["budget_epochs"] == [5, 6]
    assert by_row["n_iter=3"]["values"] == pytest.approx([0.22, 0.24]) and by_row["n_iter=3"]["budget_epochs"] == [2, 2]


def test_a_run_that_stopped_before_the_budget_keeps_its_best_epoch_and_is_counted(tmp_path):
    root = write_sweep(tmp_path)
    _, by_row = cells(root, "epochs=6")
    assert by_row["n_iter=3"]["values"] == pytest.approx([0.03, 0.10]) and by_row["n_iter=3"]["budget_epochs"] == [6, 4]
    res = runner.invoke(app, ["report", str(root), "--budget", "epochs=6"])
    assert res.exit_code == 0, res.output
    assert "best-val epoch within 6 epochs" in res.output and "1 of 4 runs stopped before spending the budget" in res.output


def test_higher_is_better_picks_the_highest_validation_score(tmp_path):
    runs = [(1, 0, 1, 1.0, [(0.5, 0.4), (0.7, 0.6), (0.6, 0.9)]), (2, 0, 1, 1.0, [(0.2, 0.2), (0.3, 0.35), (0.8, 0.7)])]
    _, by_row = cells(write_sweep(tmp_path, runs, metric="accuracy", task="node-classification"), "epochs=2")
    assert by_row["n_iter=1"]["values"] == [0.6] and by_row["n_iter=2"]["values"] == [0.35]


@pytest.mark.parametrize("args, says", [
    (["--budget", "steps"], "give KIND=AMOUNT"),
    (["--budget", "hours=3"], "give KIND=AMOUNT"),
    (["--budget", "steps=-1"], "give KIND=AMOUNT"),
    (["--budget", "steps=5"], "first epoch already costs 10"),
    (["--budget", "steps=50", "--spread", "test-batches"], "drop --protocol and --spread"),
    (["--budget", "steps=50", "--protocol", "last-epoch"], "drop --protocol and --spread"),
])
def test_bad_budgets_are_one_line_and_exit_2(tmp_path, args, says):
    res = runner.invoke(app, ["report", str(write_sweep(tmp_path)), *args])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and says in lines[0], res.output


def test_runs_without_what_the_budget_needs_say_so(tmp_path):
    root = write_sweep(tmp_path)
    metrics = root / "runs" / "vit-1-0" / "metrics.json"
    m = json.loads(metrics.read_text())
    del m["train_flops_per_step"]
    metrics.write_text(json.dumps(m))
    res = runner.invoke(app, ["report", str(root), "--budget", "flops=6000"])
    assert res.exit_code == 2 and "run vit-1-0 recorded no train_steps_per_epoch and train_flops_per_step" in res.output
    (root / "runs" / "vit-1-0" / "history.csv").unlink()
    res = runner.invoke(app, ["report", str(root), "--budget", "epochs=3"])
    assert res.exit_code == 2 and "run vit-1-0 has no history.csv with val_mse and test_mse" in res.output
