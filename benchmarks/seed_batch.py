"""Benchmark: what many seeds of one graph configuration cost, side by side in one process.

    FIXPT_DATA=../shared/data python benchmarks/seed_batch.py [--device cpu|cuda] [--seeds 10] [--epochs 5]
        [--data cora-0.0,cora-0.5,citeseer-0.5]

1. Dropout on noisy Cora's dense input features (2708 x 1433): fixpt's random-bit masks
   (:func:`fixpt.models.kernels.dropout`) against ``torch.nn.functional.dropout``.
2. A training epoch (step and evaluation pass) of each model on noisy Cora with the two dropouts:
   the baseline swaps ``torch.nn.functional.dropout`` in for fixpt's in every layer.
3. Seed batches: ``--seeds`` seeds of one configuration trained for ``--epochs`` epochs as one
   batch (:func:`fixpt.seed_batch.train_seeds`) against the same seeds one after the other
   (:func:`fixpt.train.train`), per model and data set; the ratio is sequential / batched time.
4. PIGN's paper form (no input dropout, so the seeds share the input features) on the noisy graphs
   with the authors' settings: the seed batch with the input layer as one wide product
   ``X [W_1 .. W_S]^T`` against the same batch with ``S`` narrow products (vmap's default, a
   batched matmul) and against one seed at a time.

Variants alternate in rounds; medians are reported, and their ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")

import fixpt.models.kernels as kernels  # noqa: E402
from fixpt.seed_batch import train_seeds  # noqa: E402
from fixpt.train import build, evaluate, train  # noqa: E402

MODELS = [("gnn", "gcn"), ("gnn", "gat"), ("pign", "gcn"), ("pign", "gat"), ("itergnn", "gcn")]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def alternate(variants: dict, rounds: int, device: torch.device, warmup: bool = True) -> dict[str, float]:
    """Median time of each variant, run in alternating rounds (after one warm-up each)."""
    for fn in variants.values() if warmup else ():
        fn()
    times = {k: [] for k in variants}
    for _ in range(rounds):
        for k, fn in variants.items():
            times[k].append(timed(fn, device))
    return {k: statistics.median(v) for k, v in times.items()}


def torch_dropout(x, p, training=True):
    return F.dropout(x, p, training)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help='cpu or cuda')
    ap.add_argument("--seeds", type=int, default=10, help='seeds per configuration trained as one batch (sections 3 and 4)')
    ap.add_argument("--epochs", type=int, default=5, help='epochs each seed trains (sections 3 and 4)')
    ap.add_argument("--rounds", type=int, default=5, help='alternating rounds per variant in the epoch table (section 2; medians reported)')
    ap.add_argument("--data", default="cora-0.0,cora-0.5,citeseer-0.5",
                    help="data sets of the seed-batch table, as name-noise, comma-separated")
    ap.add_argument("--sections", default="1,2,3,4", help="which of the sections above to run, comma-separated")
    args = ap.parse_args()
    if not os.environ.get("FIXPT_DATA"):
        raise SystemExit("this benchmark needs Cora and CiteSeer: set FIXPT_DATA to the folder holding planetoid/")
    dev = torch.device(args.device)
    print(f"device {dev}, torch threads {torch.get_num_threads()}, {args.seeds} seeds x {args.epochs} epochs\n")

    sections = set(args.sections.split(","))
    seeds = list(range(args.seeds))
    cfg = {"epochs": args.epochs, "patience": args.epochs}
    if "1" in sections:
        dropout_table(dev)
    if "2" in sections:
        epoch_table(dev, args.rounds)
    if "3" in sections:
        seed_batch_table(args, dev, seeds, cfg)
    if "4" in sections:
        paper_form_table(args, dev, seeds, cfg)


def dropout_table(dev) -> None:
    noisy = {"dataset": "cora", "noise": 0.5}
    _, task, _, data, _, _ = build("gnn", {}, noisy, dev)
    med = alternate({"fixpt": lambda: kernels.dropout(data.x, 0.5),
                     "torch": lambda: F.dropout(data.x, 0.5)}, 20, dev)
    print("| dropout of noisy Cora's features | fixpt (random bits) | torch F.dropout | speed-up |\n|---|---:|---:|---:|")
    print(f"| 2708 x 1433, p = 0.5 | {1e3 * med['fixpt']:.2f} ms | {1e3 * med['torch']:.2f} ms | {med['torch'] / med['fixpt']:.2f}x |\n")


def epoch_table(dev, rounds: int) -> None:
    noisy = {"dataset": "cora", "noise": 0.5}
    print("| epoch on noisy Cora | fixpt dropout | torch dropout | speed-up |\n|---|---:|---:|---:|")
    for name, backbone in MODELS:
        torch.manual_seed(0)
        _, task, model, data, _, dcfg = build(name, {"backbone": backbone}, noisy, dev)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)

        def epoch():
            model.train()
            opt.zero_grad(set_to_none=True)
            task.loss(model(data), data).backward()
            opt.step()
            evaluate(model, task, data, task.metric_for(dcfg))

        def with_torch_dropout():
            kernels.dropout, saved = torch_dropout, kernels.dropout  # every Dropout module calls kernels.dropout
            try:
                epoch()
            finally:
                kernels.dropout = saved

        med = alternate({"fixpt": epoch, "torch": with_torch_dropout}, rounds, dev)
        print(f"| {name}-{backbone} | {1e3 * med['fixpt']:.1f} ms | {1e3 * med['torch']:.1f} ms | {med['torch'] / med['fixpt']:.2f}x |")


def seed_batch_table(args, dev, seeds: list[int], cfg: dict) -> None:
    print(f"\n| {args.seeds} seeds x {args.epochs} epochs | data | one at a time | seed batch | speed-up |\n|---|---|---:|---:|---:|")
    for dataset, noise in (item.rsplit("-", 1) for item in args.data.split(",")):
        graph = {"dataset": dataset, "noise": float(noise)}
        for name, backbone in MODELS:
            mc = {"backbone": backbone}
            train(name, mc, graph, {"epochs": 1}, device=args.device)  # warm-up: data, caches, kernels
            train_seeds(name, mc, graph, {"epochs": 1}, seeds[:2], device=args.device)
            med = alternate({"sequential": lambda: [train(name, mc, graph, {**cfg, "seed": s}, device=args.device) for s in seeds],
                             "batched": lambda: train_seeds(name, mc, graph, cfg, seeds, device=args.device)}, 1, dev,
                            warmup=False)
            print(f"| {name}-{backbone} | {dataset} {noise} | {med['sequential']:.1f} s | {med['batched']:.1f} s | "
                  f"{med['sequential'] / med['batched']:.2f}x |")


def paper_form_table(args, dev, seeds: list[int], cfg: dict) -> None:
    print(f"\n| paper form, {args.seeds} seeds x {args.epochs} epochs | one at a time | batch, narrow input products | "
          "batch, one wide input product | wide vs narrow | wide vs one at a time |\n|---|---:|---:|---:|---:|---:|")
    for dataset, backbone, mc in PAPER_FORM:
        graph = {"dataset": dataset, "noise": 0.5}
        mc = {"form": "paper", "backbone": backbone, **mc}
        train("pign", mc, graph, {"epochs": 1}, device=args.device)  # warm-up: data, caches, kernels
        train_seeds("pign", mc, graph, {"epochs": 1}, seeds[:2], device=args.device)
        med = alternate({"sequential": lambda: [train("pign", mc, graph, {**cfg, "seed": s}, device=args.device) for s in seeds],
                         "narrow": lambda: _with_narrow_input(lambda: train_seeds("pign", mc, graph, cfg, seeds, device=args.device)),
                         "wide": lambda: train_seeds("pign", mc, graph, cfg, seeds, device=args.device)}, 1, dev, warmup=False)
        print(f"| pign-{backbone} {dataset}-50% | {med['sequential']:.1f} s | {med['narrow']:.1f} s | {med['wide']:.1f} s | "
              f"{med['narrow'] / med['wide']:.2f}x | {med['sequential'] / med['wide']:.2f}x |")


# the authors' settings of the noisy cells (fixpt/presets/table5-paper.yaml)
PAPER_FORM = [("cora", "gcn", {"max_iter": 7, "alpha": 0.6, "hidden": 32, "dropout": 0.5}),
              ("citeseer", "gcn", {"max_iter": 8, "alpha": 0.6, "hidden": 32, "dropout": 0.5}),
              ("cora", "gat", {"max_iter": 10, "alpha": 0.65, "hidden": 64, "dropout": 0.6})]


def _with_narrow_input(fn):
    """Run ``fn`` with the input layer's vmap rule replaced by vmap's default for ``F.linear`` (S batched products)."""
    saved = kernels.input_product
    kernels.input_product = lambda x, w: F.linear(x, w)  # InputLinear calls kernels.input_product
    try:
        return fn()
    finally:
        kernels.input_product = saved


if __name__ == "__main__":
    main()
