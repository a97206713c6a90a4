"""Benchmark: warm starts (``--warm-start``) against cold ones, in one process, as ratios.

    FIXPT_DATA=../shared/data python benchmarks/warm_start.py [--epochs 200] [--seeds 0 1 2] [--dataset cora]

For each seed, the same PIGN run is trained twice, cold (every solve from the free term f) and warm (every
solve from the previous solution of the same pass: training or evaluation), alternating. Reported: operator
evaluations per epoch (training and evaluation solves together), wall time, and the test accuracy at the
best-validation epoch; the ratios are warm / cold. The default model is a contractive GCN PIGN
(``Lip(T) <= 0.9``) solved to ``tol`` 1e-4 within 100 iterations, so both runs solve to the same tolerance
and reach the same (unique) fixed point; a model whose solves stop at ``max_iter`` saves nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import warnings

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")

from fixpt.train import train  # noqa: E402


def one_run(model: dict, data: dict, epochs: int, seed: int, warm: bool) -> dict:
    with tempfile.TemporaryDirectory() as out:
        m = train("pign", model, data, {"epochs": epochs, "patience": epochs, "seed": seed, "warm_start": warm}, out=out,
                  device="cpu", save_ckpt=False)
    return {"evals_per_epoch": m["operator_evaluations_per_epoch"], "seconds": m["seconds"], "test_accuracy": m["test_accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=200, help="training epochs of every run (patience = epochs: all run)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds; each trains cold and warm")
    ap.add_argument("--dataset", default="cora", help="graph data set (cora, citeseer, pubmed, csbm)")
    ap.add_argument("--backbone", default="gcn", help="PIGN backbone")
    ap.add_argument("--tol", type=float, default=1e-4, help="the solve's relative tolerance")
    ap.add_argument("--max-iter", type=int, default=100, help="the solve's iteration limit")
    ap.add_argument("--not-contractive", action="store_true", help="train without spectral normalisation")
    ap.add_argument("--json", dest="json_out", help="also write the rows to this JSON file")
    args = ap.parse_args()
    model = {"backbone": args.backbone, "tol": args.tol, "max_iter": args.max_iter, "contractive": not args.not_contractive}
    rows = []
    for seed in args.seeds:
        cold = one_run(model, {"dataset": args.dataset}, args.epochs, seed, warm=False)
        warm = one_run(model, {"dataset": args.dataset}, args.epochs, seed, warm=True)
        rows.append({"seed": seed, "cold": cold, "warm": warm})
        print(f"seed {seed}: evaluations/epoch {cold['evals_per_epoch']:.1f} -> {warm['evals_per_epoch']:.1f} "
              f"(x{warm['evals_per_epoch'] / cold['evals_per_epoch']:.2f}), time x{warm['seconds'] / cold['seconds']:.2f}, "
              f"test accuracy {cold['test_accuracy']:.3f} -> {warm['test_accuracy']:.3f}", flush=True)
    for key in ("evals_per_epoch", "seconds"):
        ratios = [r["warm"][key] / r["cold"][key] for r in rows]
        print(f"{key}: warm / cold median x{statistics.median(ratios):.2f} (per seed: {', '.join(f'{x:.2f}' for x in ratios)})")
    acc = {k: [r[k]["test_accuracy"] for r in rows] for k in ("cold", "warm")}
    print("test accuracy: " + ", ".join(f"{k} {statistics.mean(v):.3f} +- {statistics.pstdev(v):.3f}" for k, v in acc.items()))
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
