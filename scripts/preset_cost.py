"""What a preset's full grid would cost, from a short trial sweep of it: seconds per epoch of each finished run
(``metrics.json``: ``seconds / epochs_run``, training and per-epoch evaluation), and the grid's time if every run
went to ``--epochs`` (the preset's cap; patience usually stops runs earlier, so this is an upper bound) over
``--seeds`` seeds.

    fixpt sweep table4-initial --seeds 1 --set epochs=3 --set patience=3 --no-ckpt --out /tmp/t4-trial
    python scripts/preset_cost.py /tmp/t4-trial --epochs 2000 --seeds 3

scripts/gpu-check.sh runs this for the Navier-Stokes plateau presets (part ``ns-presets``), to size them for a
device session.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fixpt.errors import FixptError
from fixpt.report import load_runs
from fixpt.report.runs import setting_label


def run_costs(sweep_dir: Path) -> list[tuple[str, float]]:
    """(run id with the settings the runs differ in, seconds per epoch) of every finished run of the sweep, as
    ``fixpt report`` reads them (:func:`fixpt.report.load_runs`)."""
    sweep = load_runs(sweep_dir)
    keys = [k for k in sweep.varying if k != "seed"]
    return [(" ".join([run.id] + [label for k in keys if (label := setting_label(run, k))]),
             float(run.metrics["seconds"]) / max(int(run.metrics["epochs_run"]), 1)) for run in sweep.runs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep_dir", type=Path, help="the trial sweep's folder")
    ap.add_argument("--epochs", type=int, default=2000, help="the preset's epoch cap")
    ap.add_argument("--seeds", type=int, default=3, help="the preset's seeds")
    args = ap.parse_args()
    try:
        costs = run_costs(args.sweep_dir)
    except FixptError as e:  # not a sweep folder, or no finished run yet
        raise SystemExit(str(e)) from None
    for label, per_epoch in costs:
        print(f"{per_epoch:8.2f} s/epoch  {label}")
    total = sum(c for _, c in costs) * args.epochs * args.seeds
    print(f"grid at {args.epochs} epochs x {args.seeds} seeds: at most {total / 3600:.1f} h of one device")


if __name__ == "__main__":
    main()
