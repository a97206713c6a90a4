"""Benchmark: what one Cora run costs, ours against torch-geometric's message passing, same process.

    FIXPT_DATA=../shared/data python benchmarks/cora_run.py [--epochs 20] [--noise 0.0]

1. Per epoch (a training step and the evaluation pass) of PIGN on Cora, GCN, GraphSAGE and GAT
   blocks: ours (CSR sparse products for propagation, attention aggregation and the sparse input
   features: the ``fast`` kernels) against the same model on the ``reference`` kernels
   (``FIXPT_KERNELS=reference``: torch-geometric's ``GCNConv`` / ``SAGEConv`` / ``GATConv`` and
   ``F.dropout``). The weights are copied across, and the two forward passes are checked to agree
   before anything is timed. Variants alternate in
   rounds; medians are reported, and their ratio.
2. Loading: the first ``load_graph`` of a process (raw files -> PyG processing -> row
   normalisation -> noise) against every later one (the per-process cache a sweep relies on).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import torch

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")


from fixpt.data.graph import GraphDataConfig, _load_cached, load_graph  # noqa: E402
from fixpt.models.kernels import ENV  # noqa: E402
from fixpt.train import build, evaluate  # noqa: E402


def reference_twin(model, name: str, cfg: dict, graph: dict):
    """The same model built on the reference kernels (torch-geometric convolutions, ``F.dropout``), same weights."""
    saved = os.environ.get(ENV)
    os.environ[ENV] = "reference"
    try:
        _, _, twin, _, _, _ = build(name, cfg, graph, torch.device("cpu"))
    finally:
        os.environ.pop(ENV) if saved is None else os.environ.__setitem__(ENV, saved)
    twin.load_state_dict(model.state_dict())
    return twin


def epoch(model, task, data, opt, metric) -> float:
    t = time.perf_counter()
    model.train()
    opt.zero_grad(set_to_none=True)
    task.loss(model(data), data).backward()
    opt.step()
    evaluate(model, task, data, metric)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20, help='epochs timed per variant (medians reported)')
    ap.add_argument("--noise", type=float, default=0.0, help='drop-in noise on the Cora features (0.5: half of all entries +1)')
    args = ap.parse_args()
    if not os.environ.get("FIXPT_DATA"):
        raise SystemExit("this benchmark needs Cora: set FIXPT_DATA to the folder holding planetoid/")
    graph = {"dataset": "cora", "noise": args.noise}
    print(f"Cora (noise {args.noise}), PIGN defaults (hidden 64, 10 iterations), torch threads {torch.get_num_threads()}")

    t = time.perf_counter()
    load_graph(GraphDataConfig(**graph))
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(10):
        load_graph(GraphDataConfig(**graph))
    cached = (time.perf_counter() - t) / 10
    print(f"  load_graph: first {1e3 * first:.1f} ms, cached {1e3 * cached:.2f} ms  ({first / cached:.0f}x)")
    _load_cached.cache_clear()

    for backbone in ("gcn", "sage", "gat"):
        torch.manual_seed(0)
        _, task, ours, data, _, dcfg = build("pign", {"backbone": backbone}, graph, torch.device("cpu"))
        twin = reference_twin(ours, "pign", {"backbone": backbone}, graph)
        metric = task.metric_for(dcfg)
        ours.eval(), twin.eval()
        with torch.no_grad():
            err = float((ours(data) - twin(data)).abs().max())
        assert err < 1e-4, f"the two implementations disagree by {err}"
        runs = {"ours (CSR)": ours, "torch-geometric (reference)": twin}
        opts = {k: torch.optim.Adam(m.parameters(), lr=0.01) for k, m in runs.items()}
        times = {k: [] for k in runs}
        for k, m in runs.items():
            epoch(m, task, data, opts[k], metric)  # warm-up
        for _ in range(args.epochs):
            for k, m in runs.items():
                times[k].append(epoch(m, task, data, opts[k], metric))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"  PIGN-{backbone}: outputs agree to {err:.1e}")
        for k, v in med.items():
            print(f"    {k:24s} {1e3 * v:7.1f} ms / epoch")
        print(f"    speed-up {med['torch-geometric (reference)'] / med['ours (CSR)']:.2f}x")


if __name__ == "__main__":
    main()
