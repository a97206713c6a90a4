"""Sweeps: a YAML preset expanded into runs, run resumably, one directory per run.

A preset (a YAML file, or a built-in one by name: ``fixpt/presets/*.yaml``; the README documents the format
with an annotated example)::

    description: what the sweep reproduces
    report: table5          # the layout ``fixpt report`` uses (a registered layout: table5, table1, fig2, recycle, generic)
    model: [gnn, itergnn, pign]
    seeds: 10               # seeds 0 .. N-1 (``--seeds`` overrides)
    base: {epochs: 200}     # one value per key, for every run
    grid:                   # lists expand as a Cartesian product; a list of grids is their union
      backbone: [gcn, gat]
      dataset: [cora, citeseer]

Keys are flat: any field of the model's config, of the data config or of the training config
(``epochs``, ``lr``, ``seed``, ...). A key that no config of a run's model knows is an error that
names it. Each run directory holds ``config.json`` (the resolved configs), then ``ckpt.pt`` and
last ``metrics.json``, each written atomically: a run is complete exactly when ``metrics.json``
exists, so a sweep killed at any moment loses only the runs in flight, and rerunning the same
command skips the complete runs. A failed run leaves ``error.json`` instead and is retried on the
next invocation. The sweep directory's ``index.json`` lists every planned run.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import multiprocessing as mp
import reprlib
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from .config import field_names, from_dict, to_dict
from .errors import FixptError
from .presets import find_preset
from .registry import LAYOUTS, get_spec, list_models
from .tasks import FitRequest, get_task
from .sweepdir import INDEX, run_folder, varying_keys
from .training.rundir import CONFIG, RunDir, write_json
from .workers import WORKER_DIED, WorkerPool

MAX_PRESET_BYTES = 1_000_000
MAX_PRESET_NODES = 100_000
ID_HEX = 16  # hex digits of a run id's hash: 64 bits, so a million runs collide with odds of 3e-8
LEGACY_HEX = 8  # what sweeps before 2026-12 used; their folders are found and resumed
PRESET_KEYS = ("description", "report", "model", "seeds", "base", "grid")


@dataclass
class Run:
    """One point of a sweep: a model name and its flat parameters (seed included)."""

    model: str
    params: dict[str, Any]
    id: str = ""
    configs: dict[str, dict] = field(default_factory=dict)  # resolved model_config / data / train
    key: str = ""  # the canonical text the id hashes: the model and the keys the preset gives

    def as_dict(self) -> dict:
        return {"id": self.id, "model": self.model, "params": self.params}


@dataclass
class Sweep:
    name: str
    description: str
    report: str
    runs: list[Run]
    varying: list[str]  # keys that take more than one value (model included), in grid order


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise FixptError(f"preset {path} does not exist; the built-in presets are named, e.g. fixpt sweep table5")
    if path.stat().st_size > MAX_PRESET_BYTES:
        raise FixptError(f"{path} is {path.stat().st_size} bytes; a preset is at most {MAX_PRESET_BYTES} (is it the right file?)")
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise FixptError(f"{path} is not valid YAML text ({str(e).splitlines()[0][:120]})") from None
    _check_size(doc, path)
    if not isinstance(doc, dict):
        raise FixptError(f"{path} must hold a mapping with keys {', '.join(PRESET_KEYS)}")
    return doc


def _check_size(doc: Any, path: Path) -> None:
    """Refuse a preset whose aliases expand to more than :data:`MAX_PRESET_NODES` values (a YAML bomb:
    a few lines that expand to billions), counted without expanding it."""
    stack, seen = [doc], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_PRESET_NODES:
            raise FixptError(f"{path} expands to more than {MAX_PRESET_NODES} values (nested YAML aliases?); a preset is small")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _short(value: Any) -> str:
    """A value for an error message, cut to a line."""
    short = reprlib.Repr()  # (keyword arguments only from Python 3.12)
    short.maxstring = short.maxother = 60
    short.maxlist = short.maxdict = 6
    short.maxlevel = 3
    return short.repr(value)


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """``--set key=value`` pairs; values are YAML (``alpha=0.7``, ``backbone=[gcn,sage]``)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FixptError(f"--set {item!r} must look like key=value (e.g. --set epochs=50 or --set backbone=[gcn,sage])")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _split(model: str, params: dict[str, Any]) -> dict[str, dict]:
    """Route flat keys to the model, data and training configs (``task`` picks one of the model's
    tasks and is not routed); an unknown key is an error."""
    spec = get_spec(model)
    task = get_task(spec.task_for(params.get("task")))
    sections = {"model": field_names(spec.config), "data": field_names(task.data_config), "train": field_names(task.run_config)}
    out: dict[str, dict] = {k: {} for k in sections}
    for key, value in params.items():
        if key == "task":
            continue
        where = [s for s, names in sections.items() if key in names]
        if not where:
            valid = sorted(n for names in sections.values() for n in names)
            raise FixptError(f"preset key {key!r} is not a config key of model {model!r} (nor of its data or training "
                             f"config); valid keys: {', '.join(valid)}")
        out[where[0]][key] = value
    return out


def resolve(run: Run) -> None:
    """Fill ``run.configs`` (every default made explicit) and ``run.id``; errors name the bad key."""
    parts = _split(run.model, run.params)
    spec = get_spec(run.model)
    task = get_task(spec.task_for(run.params.get("task")))
    run.configs = {
        "task": task.name,
        "model_config": to_dict(from_dict(spec.config, parts["model"], what=f"{run.model} config")),
        "data": to_dict(from_dict(task.data_config, parts["data"], what="data config")),
        "train": to_dict(from_dict(task.run_config, parts["train"], what="train config" if task.trains else "run config")),
    }
    # the id hashes what the preset says (model and flat keys), not the resolved defaults: a new
    # config field in a later fixpt version must not orphan the runs of a sweep being resumed
    # (taken after type coercion, so `noise: 0` and `noise: 0.0` name the same run)
    sections = {"model": "model_config", "data": "data", "train": "train"}
    given = {k: run.configs[sections[part]][k] for part, keys in parts.items() for k in keys}
    if "task" in run.params:  # a model's other task (absent for the default: older sweeps keep their ids)
        given["task"] = task.name
    run.key = json.dumps({"model": run.model, "params": given}, sort_keys=True)
    run.id = f"{run.model}-{hashlib.sha1(run.key.encode()).hexdigest()[:ID_HEX]}"


def _grid_points(grid: dict) -> list[dict]:
    if not isinstance(grid, dict):
        raise FixptError(f"a grid must map keys to lists of values; got {_short(grid)}")
    keys = list(grid)
    values = [v if isinstance(v, list) else [v] for v in grid.values()]
    for k, v in zip(keys, values):
        if not v:
            raise FixptError(f"grid key {k!r} has an empty list of values")
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def _override(grids: list[dict], base: dict, top_model, overrides: dict[str, Any]):
    """Apply ``--set`` overrides to the grids and the base (in place); returns the top-level model."""
    for key, value in overrides.items():
        if key == "model":
            top_model = value
            for g in grids:
                g.pop("model", None)
        elif any(key in g for g in grids):  # replace the axis where the preset has it (a union of grids
            for g in grids:                  # may give a key to one model only), and the base's value that
                if key in g or key in base:  # the other grids take
                    g[key] = value
            base.pop(key, None)
        elif isinstance(value, list):
            for g in grids:
                g[key] = value
            base.pop(key, None)
        else:
            base[key] = value
    return top_model


def load_preset(path: str | Path, *, seeds: int | None = None, overrides: dict[str, Any] | None = None) -> Sweep:
    """Expand a preset into runs. ``overrides`` (from ``--set``) replace a grid axis where the preset has
    one (in every grid that has it, and in the others too where the base gives the key), else a base key; a
    list value for a new key becomes a grid axis. ``path`` is a YAML file or the name of a built-in preset
    (:func:`fixpt.presets.find_preset`)."""
    path = find_preset(path)
    doc = _read_yaml(path)
    unknown = [k for k in doc if k not in PRESET_KEYS]
    if unknown:
        raise FixptError(f"{path}: unknown preset key {', '.join(map(repr, unknown))}; valid keys: {', '.join(PRESET_KEYS)}")
    report = doc.get("report", "generic")
    if report not in LAYOUTS:
        raise FixptError(f"{path}: report must be one of {', '.join(LAYOUTS.names())}; got {_short(report)}")
    base = doc.get("base") or {}
    if not isinstance(base, dict):
        raise FixptError(f"{path}: base must be a mapping of config keys to single values; got {_short(base)}")
    base = dict(base)
    grids = doc.get("grid") or {}
    grids = grids if isinstance(grids, list) else [grids]
    for g in grids:
        if not isinstance(g, dict):
            raise FixptError(f"{path}: a grid must map config keys to lists of values; got {_short(g)}")
    grids = [dict(g) for g in grids] or [{}]
    top_model = doc.get("model")
    n_seeds = seeds if seeds is not None else doc.get("seeds", 1)
    if not isinstance(n_seeds, int) or n_seeds < 1:
        raise FixptError(f"seeds must be a positive integer; got {_short(n_seeds)}")
    top_model = _override(grids, base, top_model, overrides or {})
    runs: list[Run] = []
    points: list[dict] = []
    for grid in grids:
        grid = dict(grid)
        if "model" not in grid:
            if top_model is None:
                raise FixptError(f"{path}: name the model (top-level 'model:' or a grid key); known: {', '.join(list_models())}")
            grid["model"] = top_model
        if "seed" not in base:
            grid.setdefault("seed", list(range(n_seeds)))
        for point in _grid_points(grid):
            params = {**base, **point}
            model = params.pop("model")
            if model not in list_models():
                raise FixptError(f"{path}: unknown model {model!r}; known: {', '.join(list_models())}")
            run = Run(model=model, params=params)
            resolve(run)
            runs.append(run)
            points.append(point)
    runs = _unique(runs)
    return Sweep(name=path.stem, description=str(doc.get("description", "")), report=report, runs=runs,
                 varying=varying_keys(points))


def _unique(runs: list[Run]) -> list[Run]:
    """Each run once (the union of grids may name a run twice); two configurations with one id are an error."""
    by_id: dict[str, Run] = {}
    for r in runs:
        seen = by_id.setdefault(r.id, r)
        if seen.key != r.key:
            raise FixptError(f"run id collision: {seen.key} and {r.key} hash to {r.id}; report it (ids hash {4 * ID_HEX} bits)")
    return list(by_id.values())


def run_dir(out: Path, run: Run) -> RunDir:
    """The run's folder; a sweep begun before ids grew to 16 hex digits keeps its 8-digit folders."""
    folder = run_folder(out, run.id)
    legacy = run_folder(out, run.id[: len(run.model) + 1 + LEGACY_HEX])
    if not folder.exists() and legacy.exists():
        folder = legacy
    _check_stored(folder, run)
    return RunDir(folder)


def _check_stored(folder: Path, run: Run) -> None:
    """A folder whose ``config.json`` holds another configuration than ``run`` (a collision, or an edited
    folder) is refused: resuming into it would mix two runs."""
    try:
        stored = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError):
        return  # no config yet (or a damaged one, rewritten when the run starts)
    given = json.loads(run.key)["params"]
    sections = ("model_config", "data", "train")
    differs = stored.get("model") != run.model or any(
        k in run.configs[s] and k in stored.get(s, {}) and stored[s][k] != run.configs[s][k] for k in given for s in sections)
    if differs:
        raise FixptError(f"{folder} holds another configuration than run {run.id} ({run.key}); move the folder away and rerun")


def status(out: Path, run: Run) -> str:
    return run_dir(out, run).status()


def sweep_id(out: Path, sweep: Sweep) -> str:
    """The sweep's id, which its tracked runs are tagged with: its name and a hash of its folder, so every
    invocation into one folder (a rerun, a second machine) gives the same id."""
    return f"{sweep.name}-{hashlib.sha1(str(Path(out).resolve()).encode()).hexdigest()[:8]}"


def write_index(out: Path, sweep: Sweep, preset: str) -> None:
    """``index.json``: every run ever planned into ``out`` (earlier invocations' runs are kept)."""
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / INDEX
    runs = {}
    if index_path.is_file():
        try:
            old = json.loads(index_path.read_text())
            runs = {r["id"]: r for r in old.get("runs", [])}
        except (json.JSONDecodeError, KeyError, TypeError):
            raise FixptError(f"{index_path} is damaged; move it away (the run directories are intact) and rerun") from None
    runs.update({r.id: r.as_dict() for r in sweep.runs})
    write_json(index_path, {"preset": preset, "name": sweep.name, "sweep_id": sweep_id(out, sweep), "report": sweep.report,
                             "varying": sweep.varying, "runs": list(runs.values())})


def _prepare(run: Run, out: Path) -> RunDir | None:
    """The run's folder, claimed for this process and started; None if another process holds or finished it."""
    d = run_dir(out, run)
    if not d.claim():
        return None
    if d.status() == "done":  # finished by another sweep process since this one planned it
        d.release()
        return None
    d.start({"model": run.model, "params": run.params, **run.configs})
    return d


def _elsewhere(run: Run) -> dict:
    return {"id": run.id, "status": "elsewhere", "seconds": 0.0}


def _failed(run: Run, d: RunDir, e: BaseException, seconds: float, tb: str | None = None) -> dict:
    """Record a failed run in its ``error.json`` and describe it."""
    return {"id": run.id, "status": "failed", "error": d.write_error(e, tb), "seconds": seconds}


def run_tracker(tracker, grid: tuple[str, ...], run: Run):
    """The sweep's tracker spec tagged for ``run``: its id and its values of the grid keys ``grid`` (and seed)."""
    if tracker is None:
        return None
    values = {"model": run.model, **run.params}
    return tracker.with_tags(run_id=run.id, **{f"grid.{k}": values[k] for k in (*grid, "seed") if k in values})


def execute(run: Run, out: Path, device: str, save_ckpt: bool, tracker=None, grid: tuple[str, ...] = ()) -> dict:
    """One run into its directory, by its task's runner (train it, or run and score it); never raises (a
    failure is recorded in ``error.json``). ``tracker``: the sweep's :class:`fixpt.tracking.TrackerSpec`
    (None: none), tagged for the run with :func:`run_tracker`."""
    d = _prepare(run, out)
    if d is None:
        return _elsewhere(run)
    start = time.perf_counter()
    try:
        spec = get_spec(run.model)
        c = run.configs
        request = FitRequest(run.model, c["model_config"], c["data"], c["train"], d.path, device, None, save_ckpt,
                             run_tracker(tracker, grid, run))
        metrics = get_task(c.get("task", spec.task)).run_point(spec, request)
        return {"id": run.id, "status": "done", "metrics": metrics, "seconds": time.perf_counter() - start}
    except Exception as e:  # noqa: BLE001 - any failure (divergence, OOM, bad data) is recorded, the sweep goes on
        return _failed(run, d, e, time.perf_counter() - start, traceback.format_exc())
    finally:
        d.release()


def execute_job(job: list[Run], out: Path, device: str, save_ckpt: bool, tracker=None, grid: tuple[str, ...] = ()) -> list[dict]:
    """Train a job: one run, or the seeds of one configuration as one seed batch (:mod:`fixpt.seed_batch`),
    each into its own directory; never raises. A seed that fails (e.g. its loss became NaN) fails alone."""
    if len(job) == 1:
        return [execute(job[0], out, device, save_ckpt, tracker, grid)]
    dirs = [_prepare(run, out) for run in job]
    mine = [(run, d) for run, d in zip(job, dirs) if d is not None]
    results = {run.id: _elsewhere(run) for run, d in zip(job, dirs) if d is None}
    if mine:
        runs = [r for r, _ in mine]
        results.update(_train_batch(runs, [d for _, d in mine], device, save_ckpt, [run_tracker(tracker, grid, r) for r in runs]))
    for d in dirs:
        if d is not None:
            d.release()
    return [results[run.id] for run in job]


def _train_batch(job: list[Run], dirs: list[RunDir], device: str, save_ckpt: bool, trackers: list) -> dict[str, dict]:
    """The seeds of ``job`` as one seed batch into their claimed folders; every run's result by id."""
    from .seed_batch import train_seeds

    first = job[0]
    start = time.perf_counter()
    try:
        results = train_seeds(first.model, first.configs["model_config"], first.configs["data"], first.configs["train"],
                              [r.configs["train"]["seed"] for r in job], outs=[d.path for d in dirs], device=device, save_ckpt=save_ckpt,
                              task=first.configs.get("task"), trackers=trackers)
    except Exception as e:  # noqa: BLE001 - the whole batch failed (bad data, OOM): every run records it
        tb = traceback.format_exc()
        return {run.id: _failed(run, d, e, time.perf_counter() - start, tb) for run, d in zip(job, dirs)}
    seconds = (time.perf_counter() - start) / len(job)
    return {run.id: _failed(run, d, res, seconds) if isinstance(res, Exception) else
            {"id": run.id, "status": "done", "metrics": res, "seconds": seconds}
            for run, d, res in zip(job, dirs, results)}


def plan_jobs(runs: list[Run], seed_batch: int) -> list[list[Run]]:
    """The runs grouped into jobs. With ``seed_batch > 1`` the runs of one configuration that differ only in
    their seed, and that :func:`fixpt.seed_batch.unbatchable_reason` accepts, go together, at most
    ``seed_batch`` per job in the order of their seeds; every other run is a job of its own."""
    if seed_batch <= 1:
        return [[r] for r in runs]
    from .seed_batch import unbatchable_reason

    jobs: dict[str, list[Run]] = {}
    for r in runs:
        c = r.configs
        if unbatchable_reason(r.model, c["model_config"], c["train"], c.get("task")) is not None:
            jobs[r.id] = [r]
            continue
        key = json.dumps({"model": r.model, "task": c.get("task"), "model_config": c["model_config"], "data": c["data"],
                          "train": {k: v for k, v in c["train"].items() if k != "seed"}}, sort_keys=True)
        jobs.setdefault(key, []).append(r)
    out = []
    for group in jobs.values():
        group.sort(key=lambda r: r.configs["train"]["seed"])
        out += [group[i:i + seed_batch] for i in range(0, len(group), seed_batch)]
    return out


EXECUTORS = ("local", "ray")


def run_sweep(sweep: Sweep, out: Path, *, device: str = "auto", workers: int = 1, save_ckpt: bool = True,
              seed_batch: int = 1, on_start: Callable[[Run], None] | None = None,
              on_done: Callable[[Run, dict], None] | None = None, executor: str = "local",
              ray_address: str | None = None, cpus_per_run: int = 1, tracker=None) -> dict:
    """Run every pending run of ``sweep`` into ``out``; return counts of finished, skipped and failed runs.
    ``seed_batch > 1`` trains up to that many seeds of one configuration together (:func:`plan_jobs`);
    ``executor="ray"`` runs each job as a Ray task (:mod:`fixpt.ray_executor`), ``local`` on ``workers`` processes.
    ``tracker`` (a checked :class:`fixpt.tracking.TrackerSpec`) logs each run, tagged with the sweep's id
    (:func:`sweep_id`), its run id and its grid values; both executors hand it to the process that trains."""
    if executor not in EXECUTORS:
        raise FixptError(f"unknown executor {executor!r}; use {' or '.join(EXECUTORS)}")
    todo = [r for r in sweep.runs if status(out, r) != "done"]
    counts = {"total": len(sweep.runs), "skipped": len(sweep.runs) - len(todo), "finished": 0, "failed": 0, "elsewhere": 0,
              "errors": {}}

    def record(run: Run, result: dict) -> None:
        counts[{"done": "finished", "elsewhere": "elsewhere"}.get(result["status"], "failed")] += 1
        if result["status"] == "failed":
            counts["errors"][run.id] = result["error"]
        if on_done is not None:
            on_done(run, result)

    def start(job: list[Run]) -> None:
        for run in job:
            if on_start is not None:
                on_start(run)

    def finish(job: list[Run], results: list[dict]) -> None:
        for run, result in zip(job, results):
            record(run, result)

    def died(job: list[Run], why: str = WORKER_DIED) -> list[dict]:
        return [_failed(run, run_dir(out, run), RuntimeError(why), 0.0, "") for run in job]

    jobs = plan_jobs(todo, seed_batch)
    if tracker is not None:
        tracker = tracker.with_tags(sweep=sweep.name, sweep_id=sweep_id(out, sweep))
    grid = tuple(sweep.varying)
    work = functools.partial(execute_job, out=out, device=device, save_ckpt=save_ckpt, tracker=tracker, grid=grid)  # a job -> its results
    if executor == "ray":
        from .ray_executor import RayPool

        RayPool(ray_address, cpus_per_run, device, work, start, finish, died).run(jobs)
    elif workers <= 1:
        for job in jobs:
            start(job)
            finish(job, work(job))
    else:
        pool = WorkerPool(workers, work, start, finish, died, _gpu_queue(device, workers))
        pool.run(jobs)
    return counts


def _gpu_queue(device: str, workers: int):
    """With several GPUs, a queue handing each worker process its own (None otherwise)."""
    if device == "cpu":
        return None
    import torch

    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_gpus <= 1:
        return None
    devices = mp.get_context("spawn").Manager().Queue()
    for i in range(workers):
        devices.put(i % n_gpus)
    return devices


def describe(run: Run, keys: list[str]) -> str:
    """A short label with the values of the varying keys and the seed."""
    parts = [run.model] if "model" in keys else []
    parts += [f"{k}={run.params[k]}" for k in keys if k != "model" and k in run.params]
    parts.append(f"seed={run.params.get('seed', 0)}")
    return " ".join(parts)
