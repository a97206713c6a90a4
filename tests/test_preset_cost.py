"""scripts/preset_cost.py: a preset's projected grid time from a trial sweep's finished runs."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "preset_cost.py"


def test_projects_seconds_per_epoch_to_the_full_grid(tmp_path):
    for rid, n_iter, seconds, epochs in [("anie-a", 1, 20.0, 2), ("anie-b", 4, 90.0, 3)]:
        d = tmp_path / "runs" / rid
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"model": "anie", "params": {"n_iter": n_iter, "heads": 1, "seed": 0}}))
        (d / "metrics.json").write_text(json.dumps({"seconds": seconds, "epochs_run": epochs}))
    (tmp_path / "runs" / "anie-c").mkdir()  # unfinished: no metrics.json
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--epochs", "100", "--seeds", "3"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].split() == ["10.00", "s/epoch", "anie-a", "n_iter=1"]  # heads does not vary: not shown
    assert out[1].split() == ["30.00", "s/epoch", "anie-b", "n_iter=4"]
    assert out[2] == f"grid at 100 epochs x 3 seeds: at most {(10 + 30) * 100 * 3 / 3600:.1f} h of one device"
