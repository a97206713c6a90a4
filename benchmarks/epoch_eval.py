"""Benchmark: what a minibatched epoch's evaluation costs, all samples against the held-out ones, in one process.

    python benchmarks/epoch_eval.py [--model vit] [--task ns-initial] [--repeats 3]

Until 2026-12-01 every epoch evaluated the model on every sample (training split included) to log a training
score; a minibatched task now evaluates only its validation and test samples each epoch
(:func:`fixpt.training.loop.held_out`) and takes the training score once, at the end. This times, on the same
model and data, one training epoch (batch 32), the old evaluation (all samples, all splits) and the new one
(validation and test samples), alternating, and reports the medians and the ratio of an epoch's time (training
plus evaluation), new / old. Run it on an otherwise idle machine with ``OMP_NUM_THREADS`` fixed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")

import torch  # noqa: E402

from fixpt.train import build  # noqa: E402
from fixpt.training.loop import _batches, _train_epoch, evaluate, held_out  # noqa: E402
from fixpt.training.parts import autocast  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vit", help="a field model (vit, anie)")
    ap.add_argument("--task", default="ns-initial", help="a minibatched task (ns-initial, navier-stokes, masked-pixels)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds, each one epoch and both evaluations")
    ap.add_argument("--batch-size", type=int, default=32, help="training batch size")
    args = ap.parse_args()
    torch.manual_seed(0)
    _, task, model, data, _, dcfg = build(args.model, {}, {}, torch.device("cpu"), task=args.task)
    metric = task.metric_for(dcfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    index = data.train_mask.nonzero().flatten()
    part, splits = held_out(data, index)
    times = {"epoch": [], "all": [], "held_out": []}
    for _ in range(args.repeats):
        times["epoch"].append(timed(lambda: _train_epoch(model, task, _batches(data, index, args.batch_size), opt,
                                                         autocast(torch.device("cpu"), False), 1)))
        times["all"].append(timed(lambda: evaluate(model, task, data, metric)))
        times["held_out"].append(timed(lambda: evaluate(model, task, part, metric, splits)))
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"model": args.model, "task": args.task, "samples": len(data.x), "held_out_samples": len(part.x),
              "threads": torch.get_num_threads(), "train_epoch_s": med["epoch"], "eval_all_s": med["all"],
              "eval_held_out_s": med["held_out"], "eval_ratio": med["held_out"] / med["all"],
              "epoch_ratio": (med["epoch"] + med["held_out"]) / (med["epoch"] + med["all"])}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
