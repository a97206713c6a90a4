"""The fixed-point view: ``iterate`` reruns :math:`z_{k+1} = \\alpha z_k + (1 - \\alpha) P(z_k)` and scores every
iterate; ``check-contraction`` measures :math:`\\|J_P\\|_2` along the solver's trajectory (:mod:`fixpt.contraction`).
It uses only the model's ``operator``, ``decode``, ``solver_options`` and ``certified_lipschitz``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.markup import escape
from torch import Tensor

from ..contraction import _flat, conjugate, contraction
from ..errors import FixptError
from ..models.base import cached_weights
from ..solve import solve
from ..training.rundir import writable_folder
from .base import PowerIterationOptions, TextTable, Trained, View, ViewResult

SPLITS = ("train", "val", "test")


@dataclass
class IterateOptions:
    max_iter: int = field(default=50, metadata={"min": 1, "help": "iterations to run"})
    solver: str | None = field(default=None, metadata={"help": "picard, anderson or broyden [default: the model's]"})
    tol: float | None = field(default=None, metadata={"min": 0, "help": "relative residual tolerance [default: the model's]"})
    alpha: float | None = field(default=None, metadata={"min": 0, "below": 1, "help": "damping [default: the model's]"})
    split: str = field(default="test", metadata={"help": "split scored at each iteration"})
    plot: str | None = field(default=None, metadata={"help": "write residual and score against k to this PNG"})


@dataclass
class ContractionOptions(PowerIterationOptions):
    samples: int = field(default=8, metadata={"min": 1, "help": "points along the solver's trajectory where ||J|| is measured"})
    require_certificate: bool = field(default=False, metadata={"help": "exit 1 unless a certified bound is below the threshold"})
    state_norm: str = field(default="l2", metadata={"choices": ("l2", "degree"), "help": "norm of the state: l2, or degree (||D^1/2 z||_2 over nodes; graph models); a contraction in any norm converges"})


def trained_depth(solver_options: dict) -> int | None:
    """The number of steps a model was trained with when it always runs exactly that many (``tol`` 0: a
    truncated iteration, e.g. PIGN's paper form); None for a model solved to a tolerance."""
    return int(solver_options["max_iter"]) if solver_options.get("tol") == 0 else None


def truncation_note(depth: int) -> str:
    return (f"note: this model is a truncated iteration, trained to run exactly {depth} steps (tol 0), not solved to a "
            f"fixed point: its answer is the k = {depth} iterate. Steps past {depth} continue the same (evaluation-mode, "
            "deterministic) map further than training ever ran it, so the score may drift from the trained answer.")


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class FixedPointView(View):
    """The iterations are the solver's steps on the model's operator P, scored through its decoder."""

    name = "fixed-point"
    iterate_options = IterateOptions
    contraction_options = ContractionOptions

    def check_iterate(self, opts: IterateOptions) -> None:
        if opts.max_iter < 1:
            raise FixptError(f"--max-iter {opts.max_iter}: iterate needs at least 1 iteration")
        if opts.plot is not None:
            writable_folder(Path(opts.plot).parent, "--plot")

    def iterate(self, trained: Trained, opts: IterateOptions, progress=None) -> ViewResult:
        model, data, task, metric = trained.model, trained.data, trained.task, trained.metric
        solver = model.solver_options()
        depth = trained_depth(solver)
        solver.update(max_iter=opts.max_iter, grad="unroll")
        solver.update({k: v for k, v in (("method", opts.solver), ("tol", opts.tol), ("alpha", opts.alpha)) if v is not None})
        if opts.split not in SPLITS:
            raise FixptError(f"unknown split {opts.split!r}; use train, val or test")
        scores = []
        with torch.no_grad(), cached_weights(model):
            f, P = model.operator(data)
            scores.append(task.score(model.decode(f, data), data, opts.split, metric))
            sol = solve(P, f, callback=lambda k, z: scores.append(task.score(model.decode(z, data), data, opts.split, metric)), **solver)
        rows = [{"k": 0, "residual": None, "abs_residual": None, metric.name: scores[0]}]
        for k in range(1, len(sol.rel_trace) + 1):  # the iterations with a finite residual (a diverged step has none)
            rows.append({"k": k, "residual": float(sol.rel_trace[k - 1].max()), "abs_residual": float(sol.abs_trace[k - 1].max()),
                         metric.name: scores[k] if k < len(scores) else None})
        result = {"model": trained.spec.name, "solver": solver["method"], "alpha": solver["alpha"], "tol": solver["tol"],
                  "split": opts.split, "iterations": rows, "converged_at": sol.n_iter if sol.converged else None,
                  "n_evals": sol.n_evals, "diverged": sol.diverged, "trained_depth": depth}
        notes = [truncation_note(depth)] if depth is not None else []
        if sol.diverged:
            notes.append(f"[red]diverged[/] at iteration {sol.n_iter}: non-finite values (the table stops at the last finite "
                         "iterate); a larger --alpha damps the iteration")
        elif sol.converged:
            notes.append(f"converged at k = {sol.n_iter} (relative residual <= {solver['tol']}), {sol.n_evals} operator evaluations")
        else:
            notes.append(f"not converged within {sol.n_iter} iterations (last relative residual {rows[-1]['residual']:.3e})")
        if opts.plot is not None:
            from ..plots import plot_iterations

            plot_iterations(rows, metric.name, result["converged_at"], opts.plot, label=f"{opts.split} {metric.name}",
                            title=f"{trained.spec.name} ({solver['method']}, alpha={solver['alpha']})", trained_depth=depth)
            notes.append(f"wrote {escape(str(opts.plot))}")
        table = TextTable(f"{trained.spec.name}: {solver['method']} iteration, alpha={solver['alpha']}, tol={solver['tol']}",
                          ["k", "residual (rel)", "residual (abs)", f"{opts.split} {metric.name}"])
        table.rows = [[str(r["k"]) + (" (trained)" if r["k"] == depth else ""), _fmt(r["residual"], ".3e"),
                       _fmt(r["abs_residual"], ".3e"), _fmt(r[metric.name], ".4f")] for r in rows]
        return ViewResult(result, [table], notes, ok=sol.converged)  # exit 1: diverged, or not converged within --max-iter

    def contraction(self, trained: Trained, opts: ContractionOptions) -> ViewResult:
        model, data = trained.model, trained.data
        solver = model.solver_options()
        depth = trained_depth(solver)
        with cached_weights(model):
            with torch.no_grad():
                f, P = model.operator(data)
                iterates = [f]
                sol = solve(P, f, callback=lambda k, z: iterates.append(z), **{**solver, "grad": "unroll"})
            if sol.diverged or not torch.isfinite(f).all():
                return _diverged(trained.spec.name, sol.n_iter)
            scale = model.state_scale(data, opts.state_norm)  # the norm ||S z||_2: work with P_S at S z
            iterates = iterates if scale is None else [scale * z for z in iterates]
            picks = torch.linspace(0, len(iterates) - 1, min(opts.samples, len(iterates))).round().long().unique()
            points = [iterates[i] for i in picks.tolist()]
            # the one-argument call in l2 keeps models written against the older interface working
            certified = model.certified_lipschitz(data) if scale is None else model.certified_lipschitz(data, opts.state_norm)
            report = contraction(conjugate(P, scale), points, batched=solver["batched"], certified=certified,
                                 threshold=opts.threshold, alpha=solver["alpha"], iters=opts.iters, seed=opts.seed)
        if sol.n_iter:
            steps = [_step_norm(iterates[k], iterates[k - 1], solver["batched"]) for k in (1, len(iterates) - 1)]
            report.add_banach_bounds(sol.n_iter, *steps)
        result = {**report.as_dict(), "trained_depth": depth, "state_norm": opts.state_norm}
        table = _contraction_table(trained.spec.name, report, result, solver["alpha"], len(points), opts.state_norm)
        colour = {"certified": "green", "empirical": "yellow", "not contractive": "red"}[report.verdict]
        notes = [f"verdict: [{colour}]{report.verdict}[/] (threshold {opts.threshold})"]
        if depth is not None:
            notes.append(f"{truncation_note(depth)} The points above lie on those {depth} steps; the verdict says whether "
                         "continuing them would converge.")
        ok = report.verdict == "certified" if opts.require_certificate else report.contractive
        return ViewResult({"model": trained.spec.name, **result}, [table], notes, ok=ok)


def _step_norm(z: Tensor, previous: Tensor, batched: bool) -> float:
    """The step :math:`\\|z_k - z_{k-1}\\|` (the largest over samples), in the coordinates of the state norm."""
    return float(torch.linalg.vector_norm(_flat(z - previous, batched), dim=1).max())


def _diverged(name: str, k: int) -> ViewResult:
    """check-contraction on an operator whose iteration leaves the finite numbers: no norm to measure."""
    where = f"at iteration {k}" if k else "at its start (the free term is not finite)"
    return ViewResult({"model": name, "verdict": "diverged", "diverged_at": k, "contractive": False},
                      notes=[f"verdict: [red]diverged[/] {where}: the solve produced non-finite values, so the operator is not "
                             "a contraction there and no Jacobian norm can be measured"], ok=False)


NORM_LABELS = {"l2": "2", "degree": "S, S = D^1/2"}


def _contraction_table(name: str, report, result: dict, alpha: float, n_points: int, state_norm: str = "l2") -> TextTable:
    ln, sub = result["local_norm"], NORM_LABELS[state_norm]
    table = TextTable(f"{name}: contraction of P(z) = T(z) + f  (damping alpha = {alpha})", ["quantity", "value", "meaning"],
                      left=("quantity", "meaning"))
    table.rows = [
        [f"local ||J_P||_{sub}", f"{ln['min']:.4f} / {ln['median']:.4f} / {ln['max']:.4f}", f"min / median / max over {n_points} points on the trajectory"],
        ["spectral radius", f"{report.spectral_radius:.4f}", "rho(J_P(z*)) at the last iterate"],
        ["empirical ratio", f"{report.empirical_ratio:.4f}", "max ||P(x)-P(y)||/||x-y|| over sampled pairs (lower bound)"],
        ["certified bound", "none" if report.certified_bound is None else f"{report.certified_bound:.4f}", report.certified_reason],
    ]
    if report.bounds:
        b = report.bounds
        table.rows += [
            ["damped factor", f"{report.damped_factor:.4f}", f"alpha + (1-alpha) k, k from the {b['factor_basis']}"],
            ["Banach a priori", f"{b['a_priori']:.3e}", f"||z_n - z*|| bound (eq. 4), n = {b['n_iter']}"],
            ["Banach a posteriori", f"{b['a_posteriori']:.3e}", "||z_n - z*|| bound (eq. 5)"],
        ]
    return table
