"""scripts/preset_cost.py: a preset's projected grid time from a trial sweep's finished runs."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "preset_cost.py"


def test_projects_seconds_per_epoch_to_the_full_grid(tmp_path):
    """A trial sweep's folder as `fixpt sweep` writes it: index.json and runs/<id>/{config,metrics}.json."""
    index = []
    for rid, n_iter, seconds, epochs in [("anie-a", 1, 20.0, 2), ("anie-b", 4, 90.0, 3), ("anie-c", 8, None, None)]:
        params = {"n_iter": n_iter, "heads": 1, "seed": 0}
        index.append({"id": rid, "model": "anie", "params": params})
        d = tmp_path / "runs" / rid
        d.mkdir(parents=True)
        if seconds is not None:  # anie-c is unfinished: no metrics.json
            (d / "config.json").write_text(json.dumps({"model": "anie", "params": params}))
            (d / "metrics.json").write_text(json.dumps({"seconds": seconds, "epochs_run": epochs, "test_mse": 1.0}))
    (tmp_path / "index.json").write_text(json.dumps({"name": "t", "report": "generic", "varying": ["n_iter"], "runs": index}))
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--epochs", "100", "--seeds", "3"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].split() == ["10.00", "s/epoch", "anie-a", "n_iter=1"]  # heads does not vary: not shown
    assert out[1].split() == ["30.00", "s/epoch", "anie-b", "n_iter=4"]
    assert out[2] == f"grid at 100 epochs x 3 seeds: at most {(10 + 30) * 100 * 3 / 3600:.1f} h of one device"


def test_a_folder_without_finished_runs_is_one_line(tmp_path):
    res = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 1 and res.stderr.strip().count("\n") == 0 and "is not a sweep directory" in res.stderr
