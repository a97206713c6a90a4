"""Experiment tracking: a run's parameters, per-epoch metrics, final metrics and checkpoint sent to
TensorBoard or MLflow (``--tracker tensorboard|mlflow``), besides the run folder's ``history.csv``.

Both training loops (the epoch loop and DDPM's step loop) talk to a :class:`Tracker` only:

- ``start(params, tags, resume)``: open the run; ``params`` is the run's configs, flattened to
  ``model.hidden``, ``train.lr``, ...; ``tags`` name the model and task, and for a sweep the sweep id,
  the run id and the run's grid values (``grid.<key>``). ``resume`` is ``(ref, step)`` for a run continued
  from its saved state: the reference ``start`` returned then, and the last step kept. Returns the
  reference to store in the training state.
- ``log_metrics(step, values)``: one epoch's (or logging window's) numbers.
- ``log_artifact(path)``: the checkpoint.
- ``finish(metrics)``: the final metrics (logged as ``final/<key>``), or None for a run that failed.

A :class:`TrackerSpec` (picklable: it travels to sweep worker processes and Ray tasks) says which
tracker and where; :meth:`TrackerSpec.check` verifies, before any training, that its library is
installed (else a one-line error naming ``pip install 'fixpt[...]'``) and that its store opens.
The libraries are imported only when a tracker is used.

- **TensorBoard** (``fixpt[tensorboard]``): an event file per run, in ``<run folder>/tensorboard`` or
  ``<uri>/<run name>``; scalars per epoch, the params and tags as text and as TensorBoard's hparams, the
  final metrics as ``final/<key>`` scalars. TensorBoard stores no files: the checkpoint's path is
  recorded as text (and, when the log folder lies outside the run folder, a copy is put beside the
  events). A resumed run purges the events after its saved step (``purge_step``).
- **MLflow** (``fixpt[mlflow]``, ``mlflow-skinny``): a run in the experiment ``experiment`` of the
  tracking URI (``uri``, else ``$MLFLOW_TRACKING_URI``, else MLflow's default). A resumed run continues
  the same MLflow run; epochs after the saved state that the killed process had already logged are
  logged again, with the same values.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .errors import FixptError

TRACKERS = ("none", "tensorboard", "mlflow")
_LIBRARY = {"tensorboard": "tensorboard", "mlflow": "mlflow"}


class Tracker(Protocol):
    kind: str

    def start(self, params: dict, tags: dict, resume: tuple[str, int] | None = None) -> str: ...

    def log_metrics(self, step: int, values: dict) -> None: ...

    def log_artifact(self, path: Path) -> None: ...

    def finish(self, metrics: dict | None) -> None: ...


class NullTracker:
    """No tracker: every call does nothing."""

    kind = "none"

    def start(self, params: dict, tags: dict, resume: tuple[str, int] | None = None) -> str:
        return ""

    def log_metrics(self, step: int, values: dict) -> None:
        pass

    def log_artifact(self, path: Path) -> None:
        pass

    def finish(self, metrics: dict | None) -> None:
        pass


@dataclass(frozen=True)
class TrackerSpec:
    """Which tracker, where, and the tags every run it opens gets."""

    kind: str = "none"
    uri: str = ""  # tensorboard: the folder of every run's events ('': each run's own folder); mlflow: the tracking URI
    experiment: str = "fixpt"  # MLflow's experiment ($MLFLOW_EXPERIMENT_NAME overrides it)
    tags: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)  # the MLFLOW_* variables where the tracker was chosen, for remote workers

    def with_tags(self, **tags) -> "TrackerSpec":
        return dataclasses.replace(self, tags={**self.tags, **{k: str(v) for k, v in tags.items()}})

    def check(self) -> "TrackerSpec":
        """The spec resolved (absolute folder, MLflow's URI and this process's MLFLOW_* variables) once its
        library is importable and its store opens; else a one-line error naming the fix."""
        if self.kind not in TRACKERS:
            raise FixptError(f"--tracker {self.kind!r} is not a tracker; use one of {', '.join(TRACKERS)}")
        if self.kind == "none":
            return self
        try:
            __import__(_LIBRARY[self.kind])
        except ImportError:
            raise FixptError(f"--tracker {self.kind} needs the {self.kind} package: pip install 'fixpt[{self.kind}]'") from None
        if self.kind == "tensorboard":
            return dataclasses.replace(self, uri=str(Path(self.uri).resolve()) if self.uri else "")
        env = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
        spec = dataclasses.replace(self, env={**env, **self.env},
                                   experiment=os.environ.get("MLFLOW_EXPERIMENT_NAME", self.experiment))
        spec = dataclasses.replace(spec, uri=_mlflow_uri(spec))
        _mlflow_experiment(spec)
        return spec

    def open(self, run_name: str, folder: Path | None) -> Tracker:
        """The tracker of one run (``folder``: its run folder, None for a run kept in memory)."""
        if self.kind == "none":
            return NullTracker()
        spec = self.check()
        if spec.kind == "tensorboard":
            base = Path(spec.uri) / run_name if spec.uri else (folder / "tensorboard" if folder is not None else Path("tensorboard") / run_name)
            return TensorBoardTracker(base)
        return MlflowTracker(spec, run_name)


NO_TRACKER = TrackerSpec()


def flatten(configs: dict) -> dict:
    """``{"model": {"hidden": 8}}`` -> ``{"model.hidden": 8}``; values other than numbers, strings and bools as JSON."""
    out = {}
    for section, values in configs.items():
        for key, value in values.items():
            plain = isinstance(value, (int, float, str, bool))
            out[f"{section}.{key}"] = value if plain else json.dumps(value)
    return out


def numbers(values: dict) -> dict[str, float]:
    """The numeric entries (not bools) of ``values``, as floats."""
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# ---------------------------------------------------------------- TensorBoard


class TensorBoardTracker:
    kind = "tensorboard"

    def __init__(self, logdir: Path):
        self.logdir, self.writer, self.step = Path(logdir), None, 0

    def start(self, params: dict, tags: dict, resume: tuple[str, int] | None = None) -> str:
        from torch.utils.tensorboard import SummaryWriter

        first = resume[1] + 1 if resume is not None else 1
        self.writer = SummaryWriter(str(self.logdir), purge_step=first)  # events at or after `first` from before are dropped
        self.params, self.tags = params, tags
        if resume is None:
            self.writer.add_text("params", _markdown(params), 0)
            self.writer.add_text("tags", _markdown(tags), 0)
        return str(self.logdir)

    def log_metrics(self, step: int, values: dict) -> None:
        for key, value in numbers(values).items():
            self.writer.add_scalar(key, value, step)
        self.step = step
        self.writer.flush()

    def log_artifact(self, path: Path) -> None:
        path = Path(path).resolve()
        where = path
        if not self.logdir.resolve().is_relative_to(path.parent):  # the events are elsewhere: keep a copy with them
            where = self.logdir / "artifacts" / path.name
            where.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, where)
        self.writer.add_text("artifacts", str(where), self.step)

    def finish(self, metrics: dict | None) -> None:
        from torch.utils.tensorboard.summary import hparams

        if metrics is not None:
            final = {f"final/{k}": v for k, v in numbers(metrics).items()}
            for key, value in final.items():
                self.writer.add_scalar(key, value, self.step)
            hp = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in {**self.params, **self.tags}.items()}
            for summary in hparams(hp, final):
                self.writer.file_writer.add_summary(summary)
        self.writer.close()


def _markdown(values: dict) -> str:
    return "\n".join(["| key | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in values.items())])


# ---------------------------------------------------------------- MLflow


def _mlflow_uri(spec: TrackerSpec) -> str:
    import mlflow

    os.environ.update({k: v for k, v in spec.env.items() if k not in os.environ})
    return spec.uri or mlflow.get_tracking_uri()


def _mlflow_client(spec: TrackerSpec):
    from mlflow.tracking import MlflowClient

    os.environ.update({k: v for k, v in spec.env.items() if k not in os.environ})
    return MlflowClient(tracking_uri=spec.uri)


def _mlflow_experiment(spec: TrackerSpec) -> str:
    """The id of the experiment, created when missing (by whichever process comes first); a store that
    cannot be opened is a one-line error."""
    try:
        client = _mlflow_client(spec)
        for _ in range(3):
            found = client.get_experiment_by_name(spec.experiment)
            if found is not None:
                return found.experiment_id
            try:
                return client.create_experiment(spec.experiment)
            except Exception:  # noqa: BLE001 - another process created it meanwhile: look again
                time.sleep(0.1)
        return client.get_experiment_by_name(spec.experiment).experiment_id
    except Exception as e:  # noqa: BLE001 - MLflow fails in many ways: a file store it refuses, a server not reachable
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:240]
        raise FixptError(f"MLflow cannot open the tracking store {spec.uri} ({first}); pass --tracker-uri "
                         "(a server http://..., sqlite:///mlflow.db, or file:DIR with MLFLOW_ALLOW_FILE_STORE=true)") from None


class MlflowTracker:
    kind = "mlflow"

    def __init__(self, spec: TrackerSpec, run_name: str):
        self.spec, self.run_name = spec, run_name
        self.client = _mlflow_client(spec)
        self.run_id, self.step = "", 0

    def start(self, params: dict, tags: dict, resume: tuple[str, int] | None = None) -> str:
        from mlflow.entities import Param

        if resume is not None and resume[0] and self._reopen(resume[0]):
            self.step = resume[1]
            return self.run_id
        run = self.client.create_run(_mlflow_experiment(self.spec), tags=tags, run_name=self.run_name)
        self.run_id = run.info.run_id
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params a call
            self.client.log_batch(self.run_id, params=items[i:i + 100])
        return self.run_id

    def _reopen(self, run_id: str) -> bool:
        """Continue the MLflow run ``run_id``; False when it is gone (deleted, or another store)."""
        try:
            self.client.update_run(run_id, status="RUNNING")
        except Exception:  # noqa: BLE001 - not found in this store: a new run is started instead
            return False
        self.run_id = run_id
        return True

    def log_metrics(self, step: int, values: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in numbers(values).items() if not math.isinf(v)]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])
        self.step = step

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def finish(self, metrics: dict | None) -> None:
        if metrics is not None:
            self.log_metrics(self.step, {f"final/{k}": v for k, v in metrics.items()})
        self.client.set_terminated(self.run_id, "FINISHED" if metrics is not None else "FAILED")


# ---------------------------------------------------------------- a run's record: history.csv and the tracker


class RunLog:
    """A training run's record as it goes: each row appended to the run folder's ``history.csv``
    (:meth:`RunDir.append_history`) and sent to the tracker. Used as a context manager: a run that raises
    is finished as failed in the tracker."""

    def __init__(self, folder, tracker: Tracker, step_key: str = "epoch", tags: dict | None = None):
        self.folder, self.tracker, self.step_key, self.tags = folder, tracker, step_key, tags or {}
        self.rows: list[dict] = []
        self.ref = ""

    @classmethod
    def open(cls, folder, spec: TrackerSpec | None, name: str, step_key: str = "epoch") -> "RunLog":
        """The record of the run in ``folder`` (a RunDir) with the tracker ``spec`` (None: none); the tracker's
        library and store are checked here, before any training. ``name``: the run's name where it has no folder."""
        spec = spec or NO_TRACKER
        tracker = spec.open(folder.path.name if folder.path is not None else name, folder.path)
        return cls(folder, tracker, step_key, spec.tags)

    def start(self, params: dict, tags: dict, history: list[dict] | None = None, ref: str = "") -> None:
        """Open the tracker's run and begin ``history.csv``: empty for a new run; for a resumed run (``history``
        given), the rows of its saved state (rows the killed process wrote after it are dropped: they are
        trained again). ``ref``: what :attr:`ref` was in the saved state; the tracker continues that run when it
        is of the same kind, else it starts a new one and is sent the saved rows first."""
        self.rows = list(history or [])
        self.folder.write_history(self.rows)
        kind, _, earlier = ref.partition(":")
        resume = None
        if history is not None:
            resume = (earlier if kind == self.tracker.kind else "", int(self.rows[-1][self.step_key]) if self.rows else 0)
        self.ref = f"{self.tracker.kind}:{self.tracker.start(params, {**tags, **self.tags}, resume)}"
        if history and self.ref != ref:  # a new tracked run for a resumed one: give it the epochs before
            for row in self.rows:
                self.tracker.log_metrics(int(row[self.step_key]), {k: v for k, v in row.items() if k != self.step_key})

    def row(self, step: int, values: dict) -> None:
        row = {self.step_key: step, **values}
        self.rows.append(row)
        self.folder.append_history(row)
        self.tracker.log_metrics(step, values)

    def finish(self, metrics: dict, checkpoint: Path | None) -> None:
        if checkpoint is not None and checkpoint.exists():
            self.tracker.log_artifact(checkpoint)
        self.tracker.finish(metrics)
        self.tracker = NullTracker()

    def fail(self) -> None:
        """Close the tracker's run as failed (the run's own error is the one reported: a tracker error here is ignored)."""
        try:
            self.tracker.finish(None)
        except Exception:  # noqa: BLE001
            pass
        self.tracker = NullTracker()

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, kind, error, tb) -> None:
        if error is not None:
            self.fail()
