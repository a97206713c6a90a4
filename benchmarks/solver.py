"""Benchmark: the three gradient modes against the number of iterations, and the solver's overhead.

    python benchmarks/solver.py [--device auto|cpu|cuda] [--nodes 2000] [--repeats 5] [--json out.json]
        [--sections modes,overhead,small,compare] [--ckpt run/ckpt.pt] [--train-epochs 30]

1. Time per training step (forward + backward + Adam step) and peak memory of a PIGN-GCN on a
   generated graph, for ``grad`` in unroll / last / implicit and max_iter in 1, 2, 4, 8, 16, 32
   (tol = 0, so every iteration runs). Memory: on CUDA the peak of ``torch.cuda.max_memory_allocated``
   over the step, minus what was allocated before it; on the CPU, where PyTorch has no allocator
   statistics, the bytes autograd saves for the backward pass (``saved_tensors_hooks``), the part of
   training memory that grows with depth.
2. Overhead of :func:`fixpt.solve` (Picard, unroll, residual tracking) against a bare hand-written
   loop ``z = a z + (1 - a) P(z)`` on the same operator, same process, interleaved repeats; the
   fastest run of each is compared (step times above are medians).
3. The same overhead on a small operator, where the dispatch of small ops dominates: 30 Picard
   steps of ``tanh(z W^T + x)``, 64 x 256 float32, residual traces kept, against the bare loop as
   written above and as one ``torch.lerp`` per step (what fixpt's step is), and torchdeq's
   ``fixed_point_iter`` when torchdeq is installed.
4. Steps and operator evaluations to relative residual 1e-5 of fixpt's Picard, Anderson and
   Broyden and, when torchdeq 0.1.0 is installed (``pip install torchdeq==0.1.0``, benchmark only),
   torchdeq's ``fixed_point_iter``, ``anderson`` and ``broyden`` on the same operators: (a) the
   symmetric linear map ``z -> A z + b``, A's spectrum spread over [0, 0.97], n = 20, float64
   (seed 0, and the evaluations over seeds 0-9); (b) a trained PIGN (``--ckpt``, or a GCN PIGN
   trained here for ``--train-epochs`` on a 1000-node CSBM graph), the whole graph one sample for
   both libraries. Evaluations are counted by wrapping the operator; the residual column is
   recomputed from each returned iterate, ``||P(z) - z|| / ||P(z)||``.

Everything is reported as ratios against a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore", category=FutureWarning)

import fixpt  # noqa: E402
from fixpt.device import resolve_device  # noqa: E402
from fixpt.train import build, load_trained, train  # noqa: E402

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


def torchdeq_solvers():
    """torchdeq.solver when torchdeq is installed (a benchmark-only comparison, not a dependency of fixpt), else None."""
    if importlib.util.find_spec("torchdeq") is None:
        return None
    import torchdeq.solver

    return torchdeq.solver


def fastest(variants: dict, repeats: int, device) -> dict:
    """Seconds of the fastest of ``repeats`` interleaved runs of each variant (after one warm-up run each)."""
    times = {name: [] for name in variants}
    for fn in variants.values():
        fn()
    for _ in range(repeats):
        for name, fn in variants.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t)
    return {name: min(ts) for name, ts in times.items()}


def small_operator(batch: int = 64, width: int = 256, seed: int = 0):
    """``P(z) = tanh(z W^T + x)`` with ``||W||_2 = 0.9`` (a contraction), float32, and ``x``."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(width, width, generator=g)
    W = 0.9 * W / torch.linalg.matrix_norm(W, ord=2)
    x = torch.randn(batch, width, generator=g)
    return (lambda z: torch.tanh(z @ W.T + x)), x


def bench_small_overhead(repeats: int, steps: int = 30, alpha: float = 0.5) -> dict:
    P, x = small_operator()

    def bare():
        z = x
        for _ in range(steps):
            z = alpha * z + (1 - alpha) * P(z)
        return z

    def bare_lerp():
        z = x
        for _ in range(steps):
            z = torch.lerp(P(z), z, alpha)
        return z

    variants = {"bare loop": bare, "bare loop, lerp": bare_lerp,
                "fixpt.solve": lambda: fixpt.solve(P, x, alpha=alpha, tol=0.0, max_iter=steps).z}
    td = torchdeq_solvers()
    if td is not None:
        variants["torchdeq fixed_point_iter"] = lambda: td.fixed_point_iter(P, x, max_iter=steps, tol=0.0, stop_mode="rel", tau=1 - alpha)[0]
    with torch.no_grad():
        sol = fixpt.solve(P, x, alpha=alpha, tol=0.0, max_iter=steps)
        assert sol.n_iter == steps and sol.abs_trace.shape == (steps, x.shape[0])  # every step ran, traces kept
        for name, fn in variants.items():
            assert torch.allclose(fn(), bare(), atol=1e-5), name
        seconds = fastest(variants, repeats, torch.device("cpu"))
    return {"steps": steps, "shape": list(x.shape), "threads": torch.get_num_threads(), "seconds": seconds,
            "ratio": {name: t / seconds["bare loop"] for name, t in seconds.items()}, "torchdeq": td is not None}


TOL = 1e-5
FIXPT_SOLVERS = (("picard", {"alpha": 0.0}), ("picard", {"alpha": 0.5}), ("anderson", {"alpha": 0.0}),
                 ("anderson", {"alpha": 0.5}), ("broyden", {"alpha": 0.0}), ("broyden", {"alpha": 0.0, "window": 40}))
TORCHDEQ_SOLVERS = (("fixed_point_iter", {}), ("anderson", {}), ("broyden", {}), ("broyden", {"LBFGS_thres": 5}))


class Counted:
    """The operator, counting its evaluations."""

    def __init__(self, P):
        self.P, self.calls = P, 0

    def __call__(self, z):
        self.calls += 1
        return self.P(z)


def relative_residual(P, z) -> float:
    """``max_b ||P(z_b) - z_b|| / ||P(z_b)||`` of a returned iterate, recomputed here (rows of ``z`` are samples);
    inf when a norm overflows or is not finite (an iterate gone to 1e154 is not a fixed point with residual 0)."""
    pz = P(z)
    size = pz.flatten(1).norm(dim=1)
    if not (torch.isfinite(size).all() and torch.isfinite(z).all()):
        return float("inf")
    return float(((pz - z).flatten(1).norm(dim=1) / size).max())


def solver_rows(P, z0, max_iter: int) -> list[dict]:
    """Steps, evaluations, flag and recomputed residual of every solver on ``P`` from ``z0`` (rows: samples)."""
    rows = []
    for method, opts in FIXPT_SOLVERS:
        counted = Counted(P)
        sol = fixpt.solve(counted, z0, method=method, tol=TOL, max_iter=max_iter, **opts)
        label = ", ".join(f"{k}={v}" for k, v in {**opts, "window": opts.get("window", 5) if method != "picard" else None}.items() if v is not None)
        rows.append({"library": "fixpt", "solver": method, "options": label, "steps": sol.n_iter, "evals": counted.calls,
                     "converged": sol.converged, "residual": relative_residual(P, sol.z)})
    td = torchdeq_solvers()
    for name, opts in TORCHDEQ_SOLVERS if td is not None else ():
        counted = Counted(P)
        z, _, info = td.get_solver(name)(counted, z0, max_iter=max_iter, tol=TOL, stop_mode="rel", **opts)
        defaults = {"fixed_point_iter": "tau=1", "anderson": "m=6, lam=1e-4", "broyden": "full memory"}[name]
        rows.append({"library": "torchdeq", "solver": name, "options": ", ".join(f"{k}={v}" for k, v in opts.items()) or defaults,
                     "steps": int(info["nstep"].max()), "evals": counted.calls, "residual": relative_residual(P, z)})
        rows[-1]["converged"] = bool(info["rel_lowest"].max() < TOL) and rows[-1]["residual"] < float("inf")
    return rows


def spread_linear_map(seed: int, n: int = 20):
    """``z -> A z + b``, ``A = Q diag(linspace(0, 0.97, n)) Q^T`` (Q orthogonal from a seeded QR), float64, one sample."""
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]
    A = Q @ torch.diag(torch.linspace(0, 0.97, n, dtype=torch.float64)) @ Q.T
    b = torch.randn(1, n, generator=g, dtype=torch.float64)
    return (lambda z: z @ A.T + b), torch.zeros_like(b)


def trained_pign(ckpt: str | None, epochs: int, device):
    """A trained PIGN's step as an operator on one flattened sample ``(1, N * hidden)``, and ``z_0 = f`` so shaped."""
    if not ckpt:
        out = Path(tempfile.mkdtemp(prefix="fixpt-bench-"))
        train("pign", {"hidden": 32}, {"dataset": "csbm", "csbm_nodes": 1000}, {"epochs": epochs}, out=out, device=str(device))
        ckpt = out / "ckpt.pt"
    trained = load_trained(ckpt, device=str(device))
    model, data = trained.model, trained.data
    with torch.no_grad():
        f = model.encode(data)
    shape = f.shape
    return (lambda z: model.step(z.reshape(shape), f, data).reshape(1, -1)), f.reshape(1, -1), str(ckpt)


def bench_compare(ckpt: str | None, epochs: int, device, seeds: int = 10) -> dict:
    P, z0, path = trained_pign(ckpt, epochs, device)  # (training needs autograd)
    with torch.no_grad():
        linear = [solver_rows(*spread_linear_map(seed), max_iter=2000) for seed in range(seeds)]
        graph = solver_rows(P, z0, max_iter=1000)
    for i, row in enumerate(linear[0]):  # evaluations of the same solver over the seeds
        row["evals_over_seeds"] = [rows[i]["evals"] for rows in linear]
        row["converged_over_seeds"] = sum(rows[i]["converged"] for rows in linear)
    return {"tol": TOL, "linear": linear[0], "pign": graph, "pign_ckpt": path, "seeds": seeds}


def report_modes(rows: list[dict], device) -> str:
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
    return "\n".join(lines)


def report_overhead(overhead: dict) -> str:
    return "\n".join([f"## Solver overhead on the PIGN ({overhead['iterations']} Picard iterations, no autograd)", "",
                      f"fixpt.solve / bare loop = {overhead['overhead_ratio']:.3f}x "
                      f"({1e3 * overhead['solve_seconds']:.2f} ms vs {1e3 * overhead['bare_seconds']:.2f} ms)"])


def report_small(small: dict) -> str:
    lines = [f"## Solver overhead on a small operator ({small['steps']} Picard steps of tanh(z W^T + x), "
             f"{small['shape'][0]} x {small['shape'][1]} float32, {small['threads']} torch threads, no autograd)", "",
             "| variant | ms | vs bare loop | vs bare loop, lerp |", "|---|---:|---:|---:|"]
    lerp = small["seconds"]["bare loop, lerp"]
    for name, t in small["seconds"].items():
        lines.append(f"| {name} | {1e3 * t:.3f} | {small['ratio'][name]:.2f}x | {t / lerp:.2f}x |")
    if not small["torchdeq"]:
        lines += ["", "(torchdeq is not installed: its row was skipped; `pip install torchdeq==0.1.0` to add it)"]
    return "\n".join(lines)


def pick(rows: list[dict], library: str, solver: str, options: str) -> dict | None:
    return next((r for r in rows if (r["library"], r["solver"], r["options"]) == (library, solver, options)), None)


def report_compare(cmp: dict) -> str:
    lines = []
    for key, title in (("linear", f"(a) linear map, spectrum over [0, 0.97], n = 20, float64 (seed 0; evaluations over seeds 0-{cmp['seeds'] - 1})"),
                       ("pign", f"(b) trained PIGN ({cmp['pign_ckpt']}), the whole graph one sample")):
        rows = cmp[key]
        lines += ["", f"## Steps to relative residual {cmp['tol']:g}: {title}", "",
                  "| library | solver | options | steps | evaluations | converged | recomputed residual |" + (" evaluations over seeds: median (min-max), converged |" if key == "linear" else ""),
                  "|---|---|---|---:|---:|---|---:|" + ("---|" if key == "linear" else "")]
        for r in rows:
            extra = ""
            if key == "linear":
                ev = r["evals_over_seeds"]
                extra = f" {statistics.median(ev):g} ({min(ev)}-{max(ev)}), {r['converged_over_seeds']}/{len(ev)} |"
            lines.append(f"| {r['library']} | {r['solver']} | {r['options']} | {r['steps']} | {r['evals']} | "
                         f"{'yes' if r['converged'] else 'no'} | {r['residual']:.1e} |{extra}")
        lines += [""] + ratio_lines(rows, key == "linear")
    return "\n".join(lines)


def ratio_lines(rows: list[dict], over_seeds: bool) -> list[str]:
    """The goals as ratios of evaluations: Anderson against Picard (both alpha = 0), Broyden against torchdeq's."""
    def evals(r):
        return f"{r['evals']}" + (f", median over seeds {statistics.median(r['evals_over_seeds']):g}" if over_seeds else "")

    def ratio(a, b):
        text = f"{a['evals'] / b['evals']:.2f}x"
        if over_seeds:
            text += f" (median of per-seed ratios {statistics.median(x / y for x, y in zip(a['evals_over_seeds'], b['evals_over_seeds'])):.2f}x)"
        return text

    out = []
    picard, anderson = pick(rows, "fixpt", "picard", "alpha=0.0"), pick(rows, "fixpt", "anderson", "alpha=0.0, window=5")
    out.append(f"- fixpt Anderson / Picard evaluations (alpha = 0): {ratio(anderson, picard)} ({evals(anderson)} vs {evals(picard)})")
    theirs = pick(rows, "torchdeq", "broyden", "full memory")
    for options in ("alpha=0.0, window=5", "alpha=0.0, window=40"):
        ours = pick(rows, "fixpt", "broyden", options)
        if theirs is not None:
            out.append(f"- fixpt Broyden ({options}) / torchdeq Broyden (full memory) evaluations: {ratio(ours, theirs)} "
                       f"({evals(ours)} vs {evals(theirs)})")
    if theirs is None:
        out.append("- torchdeq is not installed: its rows were skipped (`pip install torchdeq==0.1.0` to add them)")
    return out


SECTIONS = ("modes", "overhead", "small", "compare")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help='auto (CUDA when present), cpu or cuda')
    ap.add_argument("--nodes", type=int, default=2000, help='nodes of the generated graph (CSBM, 128 features, degree 10)')
    ap.add_argument("--hidden", type=int, default=64, help='width of the PIGN-GCN')
    ap.add_argument("--repeats", type=int, default=5, help='timed training steps per (gradient mode, iterations) point; 4x this for the overhead')
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    ap.add_argument("--small-repeats", type=int, default=200, help="interleaved timed runs of each variant on the small operator")
    ap.add_argument("--ckpt", default=None, help="compare: a trained PIGN's ckpt.pt (default: train one here)")
    ap.add_argument("--train-epochs", type=int, default=30, help="compare: epochs of the PIGN trained here when --ckpt is not given")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--json", default=None, help="also write the raw numbers here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    device = resolve_device(args.device)
    memory_memo = "CUDA peak allocated" if device.type == "cuda" else "bytes saved for backward (CPU)"
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, memory = {memory_memo}\n", flush=True)
    results = {"device": str(device), "memory": memory_memo}
    runs = {"modes": lambda: bench_modes(device, args.nodes, args.hidden, args.repeats),
            "overhead": lambda: bench_overhead(device, args.nodes, args.hidden, args.repeats * 4),
            "small": lambda: bench_small_overhead(args.small_repeats),
            "compare": lambda: bench_compare(args.ckpt, args.train_epochs, device)}
    reports = {"modes": lambda r: report_modes(r, device), "overhead": report_overhead, "small": report_small, "compare": report_compare}
    for name in sections:
        results[name] = runs[name]()
        print(reports[name](results[name]) + "\n", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
