"""The ``fixpt`` command line: parse options, call the library, render with rich.

Exit codes: 0 ok, 1 the check asked for failed (e.g. not contractive), 2 bad input (one line on
stderr, no traceback).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import os
import time
import typing
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

# PyG still calls torch.jit.script at import; the deprecation notice means nothing to our users
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")

from . import __version__  # noqa: E402
from .errors import FixptError  # noqa: E402
from .models.base import cached_weights  # noqa: E402
from .registry import get_spec, list_models  # noqa: E402
from .checkpoint import load_checkpoint  # noqa: E402
from .cli_diffusion import contraction_diffusion, is_diffusion, iterate_diffusion  # noqa: E402

out = Console()
err = Console(stderr=True)

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Neural networks as fixed-point operators: train, iterate and check contraction.")
train_app = typer.Typer(no_args_is_help=True, help="Train a registered model (one subcommand per model).")
app.add_typer(train_app, name="train")

DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON on stdout")]


def _finite_or_null(value):
    """JSON has no inf or NaN: report them as null so strict parsers (jq, JSON.parse) accept the output."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    return value


def print_json(result: dict) -> None:
    print(json.dumps(_finite_or_null(result), allow_nan=False))


def user_errors(fn):
    """Turn a :class:`FixptError` into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FixptError as e:
            err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        out.print(f"fixpt {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                                  help="print the version and exit")] = None) -> None:
    """fixpt: z* = P(z*), P(z) = T(z) + f, solved by damped Picard or Anderson iteration."""


# ---------------------------------------------------------------- train: one command per model


def _options_of(cls: type) -> list[inspect.Parameter]:
    """One keyword-only Typer option per dataclass field, ``--field-name`` with the field's help."""
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        typ = hints[f.name]
        help_text = f.metadata.get("help", "")
        if "choices" in f.metadata:
            help_text += f" (one of: {', '.join(map(str, f.metadata['choices']))})"
        flag = "--" + f.name.replace("_", "-")
        decls = [f"{flag}/--no-{f.name.replace('_', '-')}"] if typ in (bool, Optional[bool]) else [flag]
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=typer.Option(f.default, *decls, help=help_text),
                                        annotation=typ))
    return params


def _train_progress(enabled: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=not enabled, transient=False)


def _make_train_command(name: str):
    from .tasks import get_task
    from .train import train_config_of

    spec = get_spec(name)
    tasks = {t: get_task(t) for t in spec.tasks}
    train_config = train_config_of(tasks[spec.task])
    if any(train_config_of(t) is not train_config for t in tasks.values()):
        raise RuntimeError(f"model {name!r}: its tasks must share one training config")
    data_options, seen = [], set()
    for t in tasks.values():  # the data options of every task the model serves, each once
        for p in _options_of(t.data_config):
            if p.name not in seen:
                seen.add(p.name)
                data_options.append(p)
    params = _options_of(spec.config) + data_options + _options_of(train_config)
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise RuntimeError(f"model {name!r}: config fields clash with data/train options")
    params.append(inspect.Parameter("task", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                                    default=typer.Option(spec.task, "--task", help=f"one of: {', '.join(tasks)}")))
    params += [
        inspect.Parameter("out_dir", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                          default=typer.Option(None, "--out", help="run folder for ckpt.pt and metrics.json [default: runs/<model>-<time>]")),
        inspect.Parameter("device", inspect.Parameter.KEYWORD_ONLY, annotation=str, default=typer.Option("auto", "--device", help="auto, cpu or cuda")),
        inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=typer.Option(False, "--json", help="print the metrics as JSON on stdout")),
    ]
    defaults = {p.name: p.default.default for p in data_options}

    @user_errors
    def command(**kw):
        from .train import train

        task = tasks[spec.task_for(kw.get("task"))]
        groups = {"model": spec.config, "data": task.data_config, "train": train_config}
        cfgs = {g: {f.name: kw[f.name] for f in dataclasses.fields(cls)} for g, cls in groups.items()}
        foreign = [k for k in defaults if k not in cfgs["data"] and kw[k] != defaults[k]]
        if foreign:
            raise FixptError(f"--{foreign[0].replace('_', '-')} is not an option of task {task.name!r}; "
                             f"pick the task it belongs to with --task")
        out_dir = kw["out_dir"] or (Path(kw["resume"]) if kw.get("resume") else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
        main_process = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 alone reports
        # the bar is for people at a terminal; scripts (and --json) get clean stderr
        with _train_progress(enabled=err.is_terminal and not kw["as_json"] and main_process) as progress:
            bar = progress.add_task(f"train {name}", total=cfgs["train"].get("epochs") or cfgs["train"]["max_steps"], stats="")

            def on_epoch(epoch: int, ev: dict) -> None:
                progress.update(bar, completed=epoch,
                                stats=f"loss {ev['train_loss']:.3f}  " + "  ".join(
                                    f"{k.replace('_', ' ')} {v:.3f}" for k, v in ev.items() if k.startswith("val_") and k != "val_loss"))

            metrics = train(name, cfgs["model"], cfgs["data"], cfgs["train"], out=out_dir, device=kw["device"], on_epoch=on_epoch,
                            task=task.name)
        if not main_process:
            return
        if kw["as_json"]:
            print_json({**metrics, "out": str(out_dir)})
            return
        table = Table(title=f"{name} on {cfgs['data'].get('dataset', task.name)}", show_header=True)
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in metrics.items():
            if isinstance(value, (list, dict)):  # curves: in metrics.json and --json
                continue
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        out.print(table)
        out.print(f"wrote {out_dir / 'ckpt.pt'} and {out_dir / 'metrics.json'}")

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = (f"{spec.description}\n\nTask: {', '.join(tasks)}; every option is a field of {spec.config.__name__}, "
                       "the data config or the train config.")
    train_app.command(name, help=command.__doc__)(command)


def _task_trains(name: str) -> bool:
    from .tasks import get_task

    return get_task(get_spec(name).task).trains


for _name in list_models():
    if _task_trains(_name):  # alphafold-recycle trains nothing: `fixpt recycle` runs it
        _make_train_command(_name)


# ---------------------------------------------------------------- the fixed-point view of a checkpoint


def trained_depth(solver_options: dict) -> int | None:
    """The number of steps a model was trained with when it always runs exactly that many (``tol`` 0: a
    truncated iteration, e.g. PIGN's paper form); None for a model solved to a tolerance."""
    return int(solver_options["max_iter"]) if solver_options.get("tol") == 0 else None


def truncation_note(depth: int) -> str:
    return (f"note: this model is a truncated iteration, trained to run exactly {depth} steps (tol 0), not solved to a "
            f"fixed point: its answer is the k = {depth} iterate. Steps past {depth} continue the same (evaluation-mode, "
            "deterministic) map further than training ever ran it, so the score may drift from the trained answer.")


def _load_iterative(ckpt: Path, device: str, checkpoint: dict):
    from .train import load_trained

    spec, task, model, data, meta = load_trained(ckpt, device, checkpoint)
    if not spec.iterative:
        iterative = [n for n in list_models() if get_spec(n).iterative]
        raise FixptError(f"model {spec.name!r} in {ckpt} has no fixed-point iteration; this command needs an iterative model "
                         f"({', '.join(iterative)})")
    return spec, task, model, data, meta


@app.command()
@user_errors
def iterate(
    ckpt: Annotated[Path, typer.Argument(help="ckpt.pt written by fixpt train")],
    max_iter: Annotated[int, typer.Option(help="iterations to run")] = 50,
    solver: Annotated[Optional[str], typer.Option(help="picard or anderson [default: the model's]")] = None,
    tol: Annotated[Optional[float], typer.Option(help="relative residual tolerance [default: the model's]")] = None,
    alpha: Annotated[Optional[float], typer.Option(help="damping [default: the model's]")] = None,
    split: Annotated[str, typer.Option(help="split scored at each iteration")] = "test",
    plot: Annotated[Optional[Path], typer.Option(help="write residual and score against k to this PNG")] = None,
    steps: Annotated[Optional[str], typer.Option(help="diffusion models: denoising step counts, e.g. 10,50,100,250,1000 [default: 10,50,100,250,500,T]")] = None,
    samples: Annotated[int, typer.Option(help="diffusion models: images sampled per step count")] = 64,
    sampler: Annotated[str, typer.Option(help="diffusion models: ddim (deterministic, eta 0) or ddpm (ancestral, fresh noise each step)")] = "ddim",
    seed: Annotated[int, typer.Option(help="diffusion models: seed of the starting noise and of the sampler")] = 0,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="diffusion models: folder for the image grids [default: CKPT's folder/iterate]")] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Rerun a trained operator and watch it converge: residual and score at every iteration k
    (diffusion models: samples with each number of denoising steps, from the same noise)."""
    import torch

    from .solve import solve

    checkpoint = load_checkpoint(ckpt)  # read once: it decides the view and builds the model
    if is_diffusion(checkpoint):
        if solver is not None or tol is not None or alpha is not None or plot is not None:
            raise FixptError("--solver, --tol, --alpha and --plot are for fixed-point models; a DDPM iterates by --steps")
        return iterate_diffusion(ckpt, checkpoint, steps, samples, seed, out_dir, device, as_json, sampler)
    if steps is not None:
        raise FixptError("--steps applies to diffusion models (ddpm); use --max-iter for this model")
    if max_iter < 1:
        raise FixptError(f"--max-iter {max_iter}: iterate needs at least 1 iteration")
    spec, task, model, data, meta = _load_iterative(ckpt, device, checkpoint)
    opts = model.solver_options()
    depth = trained_depth(opts)
    opts.update(max_iter=max_iter, grad="unroll")
    for key, value in (("method", solver), ("tol", tol), ("alpha", alpha)):
        if value is not None:
            opts[key] = value
    if split not in ("train", "val", "test"):
        raise FixptError(f"unknown split {split!r}; use train, val or test")
    scores = []
    metric = task.metric_of(data)
    with torch.no_grad(), cached_weights(model):
        f, P = model.operator(data)
        scores.append(task.score(model.decode(f, data), data, split))
        sol = solve(P, f,
                    callback=lambda k, z: scores.append(task.score(model.decode(z, data), data, split)), **opts)
    rows = [{"k": 0, "residual": None, "abs_residual": None, metric: scores[0]}]
    for k in range(1, sol.n_iter + 1):
        rows.append({"k": k, "residual": float(sol.rel_trace[k - 1].max()), "abs_residual": float(sol.abs_trace[k - 1].max()),
                     metric: scores[k] if k < len(scores) else None})
    result = {"model": spec.name, "solver": opts["method"], "alpha": opts["alpha"], "tol": opts["tol"], "split": split,
              "iterations": rows, "converged_at": sol.n_iter if sol.converged else None, "n_evals": sol.n_evals,
              "diverged": sol.diverged, "trained_depth": depth}
    if plot is not None:
        from .plots import plot_iterations

        plot_iterations(rows, metric, result["converged_at"], plot, label=f"{split} {metric}",
                        title=f"{spec.name} ({opts['method']}, alpha={opts['alpha']})", trained_depth=depth)
    if as_json:
        print_json(result)
    else:
        table = Table(title=f"{spec.name}: {opts['method']} iteration, alpha={opts['alpha']}, tol={opts['tol']}")
        for col in ("k", "residual (rel)", "residual (abs)", f"{split} {metric}"):
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(str(r["k"]) + (" (trained)" if r["k"] == depth else ""),
                          "-" if r["residual"] is None else f"{r['residual']:.3e}",
                          "-" if r["abs_residual"] is None else f"{r['abs_residual']:.3e}",
                          "-" if r[metric] is None else f"{r[metric]:.4f}")
        out.print(table)
        if depth is not None:
            out.print(truncation_note(depth), highlight=False)
        if sol.diverged:
            out.print(f"[red]diverged[/]: non-finite values at iteration {sol.n_iter}")
        elif sol.converged:
            out.print(f"converged at k = {sol.n_iter} (relative residual <= {opts['tol']}), {sol.n_evals} operator evaluations")
        else:
            out.print(f"not converged within {sol.n_iter} iterations (last relative residual {rows[-1]['residual']:.3e})")
        if plot is not None:
            out.print(f"wrote {plot}")
    if sol.diverged:
        raise typer.Exit(1)


@app.command("check-contraction")
@user_errors
def check_contraction(
    ckpt: Annotated[Path, typer.Argument(help="ckpt.pt written by fixpt train")],
    samples: Annotated[int, typer.Option(help="points along the solver's trajectory where ||J|| is measured")] = 8,
    threshold: Annotated[float, typer.Option(help="contractive means below this")] = 1.0,
    iters: Annotated[int, typer.Option(help="power-iteration steps per point")] = 100,
    require_certificate: Annotated[bool, typer.Option(help="exit 1 unless a certified bound is below the threshold")] = False,
    seed: Annotated[int, typer.Option(help="seed of the random start vectors and pairs")] = 0,
    t: Annotated[Optional[str], typer.Option("--t", help="diffusion models: timesteps of the reverse step x_t -> x_(t-1), e.g. 999,500,100,10")] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Is the trained operator a contraction? Local ||J_P||_2, spectral radius, pair ratios and a certified bound
    (diffusion models: ||d x_(t-1) / d x_t||_2 of the reverse step at the timesteps --t)."""
    import torch

    from .contraction import contraction
    from .solve import solve

    if samples < 1:
        raise FixptError("--samples must be >= 1")
    checkpoint = load_checkpoint(ckpt)  # read once: it decides the view and builds the model
    if is_diffusion(checkpoint):
        if require_certificate:
            raise FixptError("--require-certificate: no certified bound exists for a DDPM's reverse step; drop the option")
        return contraction_diffusion(ckpt, checkpoint, t, samples, iters, seed, threshold, device, as_json)
    if t is not None:
        raise FixptError("--t applies to diffusion models (ddpm): the timesteps of the reverse step")
    spec, task, model, data, meta = _load_iterative(ckpt, device, checkpoint)
    opts = model.solver_options()
    depth = trained_depth(opts)
    with cached_weights(model):
        with torch.no_grad():
            f, P = model.operator(data)
            iterates = [f]
            sol = solve(P, f, callback=lambda k, z: iterates.append(z), **{**opts, "grad": "unroll"})
        picks = torch.linspace(0, len(iterates) - 1, min(samples, len(iterates))).round().long().unique()
        points = [iterates[i] for i in picks.tolist()]
        report = contraction(P, points, batched=opts["batched"], certified=model.certified_lipschitz(data),
                             threshold=threshold, alpha=opts["alpha"], iters=iters, seed=seed)
    if sol.n_iter:
        report.add_banach_bounds(sol.n_iter, float(sol.abs_trace[0].max()), float(sol.abs_trace[-1].max()))
    result = {**report.as_dict(), "trained_depth": depth}
    if as_json:
        print_json({"model": spec.name, **result})
    else:
        ln = result["local_norm"]
        table = Table(title=f"{spec.name}: contraction of P(z) = T(z) + f  (damping alpha = {opts['alpha']})")
        table.add_column("quantity")
        table.add_column("value", justify="right")
        table.add_column("meaning")
        table.add_row("local ||J_P||_2", f"{ln['min']:.4f} / {ln['median']:.4f} / {ln['max']:.4f}", f"min / median / max over {len(points)} points on the trajectory")
        table.add_row("spectral radius", f"{report.spectral_radius:.4f}", "rho(J_P(z*)) at the last iterate")
        table.add_row("empirical ratio", f"{report.empirical_ratio:.4f}", "max ||P(x)-P(y)||/||x-y|| over sampled pairs (lower bound)")
        table.add_row("certified bound", "none" if report.certified_bound is None else f"{report.certified_bound:.4f}", report.certified_reason)
        if report.bounds:
            b = report.bounds
            table.add_row("damped factor", f"{report.damped_factor:.4f}", f"alpha + (1-alpha) k, k from the {b['factor_basis']}")
            table.add_row("Banach a priori", f"{b['a_priori']:.3e}", f"||z_n - z*|| bound (eq. 4), n = {b['n_iter']}")
            table.add_row("Banach a posteriori", f"{b['a_posteriori']:.3e}", "||z_n - z*|| bound (eq. 5)")
        out.print(table)
        colour = {"certified": "green", "empirical": "yellow", "not contractive": "red"}[report.verdict]
        out.print(f"verdict: [{colour}]{report.verdict}[/] (threshold {threshold})")
        if depth is not None:
            out.print(f"{truncation_note(depth)} The points above lie on those {depth} steps; the verdict says whether "
                      "continuing them would converge.", highlight=False)
    ok = report.verdict == "certified" if require_certificate else report.contractive
    if not ok:
        raise typer.Exit(1)


from . import cli_data, cli_recycle, cli_sweep  # noqa: E402,F401 - register `data`, `recycle`, `sweep` and `report`


def main() -> None:
    app()


if __name__ == "__main__":
    main()
