"""``fixpt train MODEL``: one subcommand per registered model that trains, its options generated from the
model's config, its tasks' data configs and its train config."""

from __future__ import annotations

import dataclasses
import inspect
import os
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..config import from_dict
from ..errors import FixptError
from ..registry import get_spec, list_models
from .console import err, options_of, out, print_json, progress_bar, tracker_options, tracker_spec, user_errors, with_signature

TRAIN_HELP = "Train a registered model (one subcommand per model)."
RUNS = Path("runs")  # where a run without --out gets its folder


def _data_options(tasks: dict) -> list[inspect.Parameter]:
    """The data options of every task a model serves, each once."""
    params, seen = [], set()
    for t in tasks.values():
        for p in options_of(t.data_config):
            if p.name not in seen:
                seen.add(p.name)
                params.append(p)
    return params


def _common_options(spec) -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter("task", kw, annotation=str, default=typer.Option(spec.task, "--task", help=f"one of: {', '.join(spec.tasks)}")),
        inspect.Parameter("out_dir", kw, annotation=Optional[Path], default=typer.Option(
            None, "--out", help="run folder for ckpt.pt and metrics.json \\[default: a new runs/<model>-<time>-<4 hex>]")),
        inspect.Parameter("overwrite", kw, annotation=bool, default=typer.Option(
            False, "--overwrite", help="replace the run already in --out (without it, an existing run is an error)")),
        inspect.Parameter("device", kw, annotation=str, default=typer.Option("auto", "--device", help="auto, cpu or cuda")),
        inspect.Parameter("as_json", kw, annotation=bool, default=typer.Option(False, "--json", help="print the metrics as JSON on stdout")),
        *tracker_options(),
    ]


def _configs(kw: dict, spec, task, data_defaults: dict) -> dict[str, dict]:
    """The options split into the model, data and train configs; a set option of another task's data is an error."""
    groups = {"model": spec.config, "data": task.data_config, "train": task.train_config}
    cfgs = {g: {f.name: kw[f.name] for f in dataclasses.fields(cls)} for g, cls in groups.items()}
    foreign = [k for k in data_defaults if k not in cfgs["data"] and kw[k] != data_defaults[k]]
    if foreign:
        raise FixptError(f"--{foreign[0].replace('_', '-')} is not an option of task {task.name!r}; pick the task it belongs to with --task")
    return cfgs


def _run_folder(name: str, out: Path | None, resumed: str | None, overwrite: bool) -> Path:
    """Where the run writes, checked before any work: a resumed run's own folder, ``--out`` (not over an earlier
    run unless ``--overwrite``), or a new folder under ``runs/``."""
    from ..training.rundir import has_run, new_run_folder, writable_folder

    if out is None and resumed:
        return writable_folder(resumed)
    if out is None:
        return new_run_folder(RUNS, name)
    if has_run(out) and not overwrite and Path(resumed or "").resolve() != out.resolve():
        raise FixptError(f"--out {out} already holds a run (ckpt.pt / metrics.json); pass --overwrite to replace it, or choose "
                         "another folder")
    return writable_folder(out)


def _show(name: str, task, cfgs: dict, metrics: dict, out_dir: Path) -> None:
    table = Table(title=f"{name} on {cfgs['data'].get('dataset', task.name)}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if not isinstance(value, (list, dict)):  # curves: in metrics.json and --json
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    out.print(table)
    out.print(f"wrote {out_dir / 'ckpt.pt'} and {out_dir / 'metrics.json'}", markup=False)


def make_train_command(name: str, train_app: typer.Typer) -> None:
    from ..tasks import get_task
    from ..train import train
    from ..training.rundir import CONFIG, removed_if_failed_empty, write_json

    spec = get_spec(name)
    tasks = {t: get_task(t) for t in spec.tasks}
    train_config = tasks[spec.task].train_config
    if any(t.train_config is not train_config for t in tasks.values()):
        raise RuntimeError(f"model {name!r}: its tasks must share one training config")
    data_options = _data_options(tasks)
    params = options_of(spec.config) + data_options + options_of(train_config) + _common_options(spec)
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise RuntimeError(f"model {name!r}: config fields clash with data/train options")
    data_defaults = {p.name: p.default.default for p in data_options}

    @user_errors
    def command(**kw):
        task = tasks[spec.task_for(kw["task"])]
        cfgs = _configs(kw, spec, task, data_defaults)
        for cls, group, what in ((spec.config, "model", f"{name} config"), (task.data_config, "data", "data config"),
                                 (task.train_config, "train", "train config")):
            from_dict(cls, cfgs[group], what=what)  # every value checked before a folder is made or anything runs
        tracker = tracker_spec(kw["tracker"], kw["tracker_uri"], "fixpt")  # a missing library: one line, before anything is made
        resumed = task.resumes_from(cfgs["train"])
        fresh = kw["out_dir"] is None and not resumed
        runs_made = fresh and not RUNS.exists()
        out_dir = _run_folder(name, kw["out_dir"], resumed, kw["overwrite"])
        main_process = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 alone reports
        # the bar is for people at a terminal; scripts (and --json) get clean stderr
        with removed_if_failed_empty(out_dir, fresh, parent_fresh=runs_made), \
                progress_bar(enabled=err.is_terminal and not kw["as_json"] and main_process) as progress:
            bar = progress.add_task(f"train {name}", total=task.length(cfgs["train"]), stats="")

            def on_epoch(epoch: int, ev: dict) -> None:
                progress.update(bar, completed=epoch, stats=f"loss {ev['train_loss']:.3f}  " + "  ".join(
                    f"{k.replace('_', ' ')} {v:.3f}" for k, v in ev.items() if k.startswith("val_") and k != "val_loss"))

            metrics = train(name, cfgs["model"], cfgs["data"], cfgs["train"], out=out_dir, device=kw["device"], on_epoch=on_epoch,
                            task=task.name, tracker=tracker)
        if main_process:  # what was asked for, beside the metrics: `fixpt report` compares runs by it
            write_json(out_dir / CONFIG, {"model": name, "task": task.name, "model_config": cfgs["model"], "data": cfgs["data"],
                                          "train": cfgs["train"]})
        if main_process and kw["as_json"]:
            print_json({**metrics, "out": str(out_dir)})
        elif main_process:
            _show(name, task, cfgs, metrics, out_dir)

    doc = (f"{spec.description}\n\nTask: {', '.join(tasks)}; every option is a field of {spec.config.__name__}, "
           "the data config or the train config.")
    train_app.command(name, help=doc)(with_signature(command, params))


def add_train_commands(app: typer.Typer) -> None:
    """``fixpt train``, a new group of one command per model registered now (the families are imported here,
    not when the module is: ``fixpt --help`` lists this group without them)."""
    from ..tasks import get_task

    train_app = typer.Typer(no_args_is_help=True, help=TRAIN_HELP)
    for name in list_models():
        if get_task(get_spec(name).task).trains:
            make_train_command(name, train_app)
    app.add_typer(train_app, name="train")
