"""``fixpt iterate`` and ``fixpt check-contraction``: the model's registered view does the work
(:mod:`fixpt.views`); the options are the union of every view's option dataclass, and an option set
for a model whose view does not have it is an error."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import typer

from ..config import from_dict
from ..errors import FixptError
from ..registry import get_spec, list_models
from .console import err, option_of, out, print_json, progress_bar, render_table, user_errors, with_signature


@dataclass(frozen=True)
class Verb:
    """What a command asks of a view: its options dataclass, the options check and the work."""

    options: Callable  # view -> options dataclass
    check: Callable  # (view, options) -> None
    run: Callable  # (view, trained, options, progress) -> ViewResult


ITERATE = Verb(lambda v: v.iterate_options, lambda v, o: v.check_iterate(o), lambda v, t, o, p: v.iterate(t, o, p))
CONTRACTION = Verb(lambda v: v.contraction_options, lambda v, o: v.check_contraction(o), lambda v, t, o, p: v.contraction(t, o))


def _views() -> list:
    """Every registered view, once, in the order of the models' names."""
    views = []
    for name in list_models():
        view = get_spec(name).view
        if view is not None and view not in views:
            views.append(view)
    return views


def _union(verb: Verb) -> tuple[list[inspect.Parameter], dict]:
    """One option per field name over the views' option dataclasses (the first view's default; the help
    texts of the views that differ joined), and each field's default."""
    fields: dict[str, tuple] = {}
    for view in _views():
        cls = verb.options(view)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in fields:
                fields[f.name] = (f, hints[f.name], [f.metadata.get("help", "")])
            elif f.metadata.get("help", "") not in fields[f.name][2]:
                fields[f.name][2].append(f.metadata.get("help", ""))
    params = [option_of(f, typ, "; ".join(helps)) for f, typ, helps in fields.values()]
    return params, {name: f.default for name, (f, _, _) in fields.items()}


def _view_and_options(ckpt: Path, verb: Verb, kw: dict, defaults: dict):
    """The checkpoint's contents, its model's view and the view's options; an option the view lacks is an error."""
    from ..checkpoint import load_checkpoint

    checkpoint = load_checkpoint(ckpt)  # read once: it decides the view and builds the model
    spec = get_spec(checkpoint["model"])
    if spec.view is None:
        viewed = [n for n in list_models() if get_spec(n).view is not None]
        raise FixptError(f"model {spec.name!r} in {ckpt} has no fixed-point iteration; this command needs an iterative model "
                         f"({', '.join(viewed)})")
    cls = verb.options(spec.view)
    own = [f.name for f in dataclasses.fields(cls)]
    foreign = [k for k, v in defaults.items() if k not in own and kw[k] != v]
    if foreign:
        raise FixptError(f"--{foreign[0].replace('_', '-')} does not apply to {spec.name!r} (a {spec.view.name} model); its options: "
                         + ", ".join("--" + n.replace("_", "-") for n in own))
    return checkpoint, spec.view, from_dict(cls, {k: kw[k] for k in own}, what="option")


def _render(result, as_json: bool) -> None:
    if as_json:
        print_json(result.data)
    else:
        for table in result.tables:
            out.print(render_table(table))
        for note in result.notes:
            out.print(note, highlight=False)
    if not result.ok:
        raise typer.Exit(1)


def _command(verb: Verb, ckpt_help: str):
    params, defaults = _union(verb)
    kw_only = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("ckpt", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Path, default=typer.Argument(..., help=ckpt_help)),
              *params,
              inspect.Parameter("data_root", kw_only, annotation=str, default=typer.Option(
                  "", "--data-root", help="folder holding the data sets (default: $FIXPT_DATA, else ~/.cache/fixpt); "
                  "never taken from the checkpoint")),
              inspect.Parameter("device", kw_only, annotation=str, default=typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda")),
              inspect.Parameter("as_json", kw_only, annotation=bool, default=typer.Option(False, "--json", help="print machine-readable JSON on stdout"))]

    @user_errors
    def command(ckpt: Path, **kw):
        from ..training.build import load_trained

        checkpoint, view, opts = _view_and_options(ckpt, verb, kw, defaults)
        verb.check(view, opts)
        trained = load_trained(ckpt, kw["device"], checkpoint, data_root=kw["data_root"])
        with progress_bar(enabled=err.is_terminal and not kw["as_json"]) as bars:
            def progress(description: str, total: int, stats: str):
                bar = bars.add_task(description, total=total, stats=stats)
                return lambda: bars.advance(bar)

            result = verb.run(view, trained, opts, progress)
        _render(result, kw["as_json"])

    return with_signature(command, params)


ITERATE_HELP = ("Rerun a trained operator and watch it converge: residual and score at every iteration k "
                "(diffusion models: samples with each number of denoising steps, from the same noise).")
CONTRACTION_HELP = ("Is the trained operator a contraction? Local ||J_P||_2, spectral radius, pair ratios and a certified bound "
                    "(diffusion models: ||d x_(t-1) / d x_t||_2 of the reverse step at the timesteps --t).")


def add_view_commands(app: typer.Typer) -> None:
    """``iterate`` and ``check-contraction``, their options from the views registered now (the families are
    imported here, not when the module is)."""
    ckpt_help = "ckpt.pt written by fixpt train"
    app.command("iterate", help=ITERATE_HELP)(_command(ITERATE, ckpt_help))
    app.command("check-contraction", help=CONTRACTION_HELP)(_command(CONTRACTION, ckpt_help))
