"""Benchmark: one PIGN-GCN training epoch on Cora with nn.Dropout vs FeatureDropout on the input.

    FIXPT_DATA=../shared/data python benchmarks/feature_dropout.py [--epochs 20] [--noise 0.0]

The same model, data and process; the encoder's first module is swapped between the two. Reports
the median seconds per epoch (a training step plus the evaluation pass) and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import torch

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")

from fixpt.models.dropout import FeatureDropout  # noqa: E402
from fixpt.train import build, evaluate  # noqa: E402


def epoch_seconds(model, task, data, opt, epochs: int) -> float:
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        model.train()
        opt.zero_grad(set_to_none=True)
        task.loss(model(data), data).backward()
        opt.step()
        evaluate(model, task, data)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--noise", type=float, default=0.0)
    args = ap.parse_args()
    if not os.environ.get("FIXPT_DATA"):
        raise SystemExit("this benchmark needs Cora: set FIXPT_DATA to the folder holding planetoid/")
    graph, what = {"dataset": "cora", "noise": args.noise}, f"Cora (noise {args.noise})"
    torch.manual_seed(0)
    _, task, model, data, _, _ = build("pign", {}, graph, torch.device("cpu"))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    density = float((data.x != 0).float().mean())
    results = {}
    for name, layer in (("nn.Dropout", torch.nn.Dropout(0.5)), ("FeatureDropout", FeatureDropout(0.5))):
        model.encoder[0] = layer
        epoch_seconds(model, task, data, opt, 2)  # warm-up
        results[name] = epoch_seconds(model, task, data, opt, args.epochs)
    print(f"{what}: features {tuple(data.x.shape)}, {100 * density:.1f} % non-zero, torch threads {torch.get_num_threads()}")
    for name, sec in results.items():
        print(f"  {name:15s} {1e3 * sec:7.1f} ms / epoch")
    print(f"  FeatureDropout / nn.Dropout = {results['FeatureDropout'] / results['nn.Dropout']:.2f}x")


if __name__ == "__main__":
    main()
