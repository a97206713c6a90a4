"""Benchmark: the three gradient modes against the number of iterations, and the solver's overhead.

    python benchmarks/solver.py [--device auto|cpu|cuda] [--nodes 2000] [--repeats 5] [--json out.json]

1. Time per training step (forward + backward + Adam step) and peak memory of a PIGN-GCN on a
   generated graph, for ``grad`` in unroll / last / implicit and max_iter in 1, 2, 4, 8, 16, 32
   (tol = 0, so every iteration runs). Memory: on CUDA the peak of ``torch.cuda.max_memory_allocated``
   over the step, minus what was allocated before it; on the CPU, where PyTorch has no allocator
   statistics, the bytes autograd saves for the backward pass (``saved_tensors_hooks``), the part of
   training memory that grows with depth.
2. Overhead of :func:`fixpt.solve` (Picard, unroll, residual tracking) against a bare hand-written
   loop ``z = a z + (1 - a) P(z)`` on the same operator, same process, interleaved repeats; the
   fastest run of each is compared (step times above are medians).

Everything is reported as ratios against a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import torch

warnings.filterwarnings("ignore", category=FutureWarning)

import fixpt  # noqa: E402
from fixpt.tasks import resolve_device  # noqa: E402
from fixpt.train import build  # noqa: E402

ITERS = (1, 2, 4, 8, 16, 32)
MODES = ("unroll", "last", "implicit")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step_cost(model, task, data, opt, device) -> tuple[float, int]:
    """Seconds and memory bytes of one training step (see the module docstring for 'memory')."""
    saved = []
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        loss = task.loss(model(data), data)
    else:
        def pack(t):
            saved.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = task.loss(model(data), data)
    loss.backward()
    opt.step()
    sync(device)
    seconds = time.perf_counter() - start
    memory = torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else sum(saved)
    return seconds, memory


def bench_modes(device, nodes: int, hidden: int, repeats: int) -> list[dict]:
    graph = {"dataset": "csbm", "csbm_nodes": nodes, "csbm_features": 128, "csbm_degree": 10}
    rows = []
    for mode in MODES:
        for n in ITERS:
            torch.manual_seed(0)
            cfg = {"hidden": hidden, "max_iter": n, "tol": 0.0, "grad": mode, "dropout": 0.0, "contractive": True, "gamma": 0.9}
            _, task, model, data, _, _ = build("pign", cfg, graph, device)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            model.train()
            train_step_cost(model, task, data, opt, device)  # warm-up
            costs = [train_step_cost(model, task, data, opt, device) for _ in range(repeats)]
            rows.append({"grad": mode, "iterations": n, "seconds": statistics.median(c[0] for c in costs),
                         "memory_bytes": max(c[1] for c in costs)})
    return rows


def bench_overhead(device, nodes: int, hidden: int, repeats: int, n_iter: int = 32) -> dict:
    torch.manual_seed(0)
    graph = {"dataset": "csbm", "csbm_nodes": nodes, "csbm_features": 128, "csbm_degree": 10}
    _, _, model, data, _, _ = build("pign", {"hidden": hidden}, graph, device)
    model.eval()
    alpha = 0.5
    with torch.no_grad():
        f = model.encode(data)
    P = lambda z: model.step(z, f, data)  # noqa: E731

    def bare():
        z = f
        for _ in range(n_iter):
            z = alpha * z + (1 - alpha) * P(z)
        return z

    def solver():
        return fixpt.solve(P, f, alpha=alpha, tol=0.0, max_iter=n_iter, batched=False).z

    with torch.no_grad():
        assert torch.allclose(bare(), solver(), atol=1e-5)
        times = {"bare": [], "solve": []}
        for _ in range(repeats):
            for name, fn in (("bare", bare), ("solve", solver)):
                sync(device)
                t = time.perf_counter()
                fn()
                sync(device)
                times[name].append(time.perf_counter() - t)
    bare_t, solve_t = min(times["bare"]), min(times["solve"])  # the least-disturbed run of each
    return {"iterations": n_iter, "bare_seconds": bare_t, "solve_seconds": solve_t, "overhead_ratio": solve_t / bare_t}


def report(rows: list[dict], overhead: dict, device) -> str:
    lines = [f"## Gradient modes on {device} (PIGN-GCN, time and memory per training step)", "",
             "| grad | iterations | ms / step | time vs 1 iter | memory (MiB) | memory vs 1 iter | time vs unroll |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    by = {(r["grad"], r["iterations"]): r for r in rows}
    for r in rows:
        one = by[(r["grad"], 1)]
        un = by[("unroll", r["iterations"])]
        lines.append(f"| {r['grad']} | {r['iterations']} | {1e3 * r['seconds']:.1f} | {r['seconds'] / one['seconds']:.2f}x | "
                     f"{r['memory_bytes'] / 2**20:.1f} | {r['memory_bytes'] / max(one['memory_bytes'], 1):.2f}x | "
                     f"{r['seconds'] / un['seconds']:.2f}x |")
    lines += ["", f"## Solver overhead ({overhead['iterations']} Picard iterations, no autograd)", "",
              f"fixpt.solve / bare loop = {overhead['overhead_ratio']:.3f}x "
              f"({1e3 * overhead['solve_seconds']:.2f} ms vs {1e3 * overhead['bare_seconds']:.2f} ms)"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help='auto (CUDA when present), cpu or cuda')
    ap.add_argument("--nodes", type=int, default=2000, help='nodes of the generated graph (CSBM, 128 features, degree 10)')
    ap.add_argument("--hidden", type=int, default=64, help='width of the PIGN-GCN')
    ap.add_argument("--repeats", type=int, default=5, help='timed training steps per (gradient mode, iterations) point; 4x this for the overhead')
    ap.add_argument("--json", default=None, help="also write the raw numbers here")
    args = ap.parse_args()
    device = resolve_device(args.device)
    rows = bench_modes(device, args.nodes, args.hidden, args.repeats)
    overhead = bench_overhead(device, args.nodes, args.hidden, args.repeats * 4)
    memory_memo = "CUDA peak allocated" if device.type == "cuda" else "bytes saved for backward (CPU)"
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, memory = {memory_memo}\n")
    print(report(rows, overhead, device))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": str(device), "memory": memory_memo, "modes": rows, "overhead": overhead}, fh, indent=2)


if __name__ == "__main__":
    main()
