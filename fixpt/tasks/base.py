"""The task interface: what a model family's data is, how it is scored and how a model of it is trained.

Every command talks to a task through this class only, never to a data set or a family directly:

- ``data_config`` / ``train_config`` / ``run_config``: the typed configs of ``fixpt train`` and of a sweep point;
- ``load(data_config)`` and ``input_spec(data)``: the data, and what a model must know of it to be built;
- ``metric_for(data_config)``: the score's name and direction, the one source of truth for training,
  seed batches and reports;
- ``loss`` / ``score``: on a split of the data; ``reference_scores``: predictors that need no training;
- ``fit``: train one run (default: the epoch loop of :mod:`fixpt.training.loop`); ``run_point``: one
  sweep point (default: ``fit``; a family that trains nothing runs and scores instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import field_names
from ..training.config import TrainConfig
from ..training.loop import fit_epochs
from ..training.rundir import STATE


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool = True


@dataclass(frozen=True)
class InputSpec:
    """What a model is built from: ``model_cls(config, in_dim, out_dim)``."""

    in_dim: Any
    out_dim: Any


@dataclass
class FitRequest:
    """One training run as asked for: the model's name and the three configs as plain dicts."""

    model: str
    model_config: dict
    data: dict
    train: dict
    out: Path | None = None
    device: str = "auto"
    on_epoch: Callable[[int, dict], None] | None = None
    save_ckpt: bool = True
    tracker: Any = None  # a fixpt.tracking.TrackerSpec (None: no tracker)


class Task:
    name: str = ""
    data_config: type = object
    train_config: type = TrainConfig
    trains: bool = True  # False: nothing is trained (no `fixpt train` command); run_point does the work
    minibatches: bool = False  # whether batch_size > 0 applies (independent samples with data.subset)
    seed_batches: bool = False  # whether the seeds of one configuration may train as one vmapped batch
    metric: Metric = Metric("accuracy")

    @property
    def run_config(self) -> type:
        """The config of a sweep point's ``train`` section."""
        return self.train_config

    @property
    def higher_is_better(self) -> bool:
        return self.metric.higher_is_better

    def metric_for(self, data_config) -> Metric:
        return self.metric

    def load(self, data_config):
        raise NotImplementedError

    def input_spec(self, data) -> InputSpec:
        raise NotImplementedError

    def loss(self, out, data, split: str = "train"):
        raise NotImplementedError

    def score(self, out, data, split: str, metric: Metric) -> float:
        raise NotImplementedError

    def reference_scores(self, data, metric: Metric) -> dict[str, dict[str, float]]:
        """Scores of predictors that need no training (e.g. zero, the training mean), by name, each
        ``{"val_<metric>": v, "test_<metric>": t}``: written to every run's ``metrics.json`` as
        ``references`` and shown as rows of ``fixpt report``. Default: none."""
        return {}

    def test_batch_spread(self, model, data, metric: Metric, batch_size: int) -> dict:
        """The test score's spread over test batches of one trained model, ``{"spread_over_test_batches": {"<metric>_std": ...,
        ...}}`` in ``metrics.json`` (``fixpt report --spread test-batches``). Default: none."""
        return {}

    def length(self, train: dict) -> int:
        """How many progress units (epochs, steps) a run of this train config takes."""
        return int(train["epochs"])

    def resumes_from(self, train: dict) -> str | None:
        """The folder a run continues from (None: a fresh run): the train config's ``resume``."""
        return train.get("resume") or None

    def fit(self, spec, request: FitRequest) -> dict:
        return fit_epochs(spec, self, request)

    def run_point(self, spec, request: FitRequest) -> dict:
        """One sweep point into ``request.out`` (which exists and holds ``config.json``); returns its metrics.
        A point killed mid-way continues from its ``train_state.pt`` (for a train config with ``resume``)."""
        if "resume" in field_names(self.run_config) and (request.out / STATE).exists():
            request.train = {**request.train, "resume": str(request.out)}
        return self.fit(spec, request)
