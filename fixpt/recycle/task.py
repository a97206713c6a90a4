"""The recycle family's task: predicted structures scored per recycle against a reference. Nothing is
trained; a sweep point runs (or reads) the predictions and scores them (:mod:`fixpt.recycle.sweep_point`)."""

from __future__ import annotations

from ..config import from_dict
from ..errors import FixptError
from ..registry import register_task
from ..tasks.base import FitRequest, Metric, Task
from ..training.rundir import RunDir
from .sweep_point import RecycleDataConfig, RecycleScoreConfig


@register_task
class StructureRecycling(Task):
    """Structures scored recycle by recycle against a reference (GDT-TS, higher is better)."""

    name = "structure-recycling"
    data_config = RecycleDataConfig
    train_config = RecycleScoreConfig
    trains = False
    metric = Metric("gdt_ts")

    def fit(self, spec, request: FitRequest) -> dict:
        raise FixptError(f"model {spec.name!r} is not trained (task {self.name}); run it with `fixpt recycle` or `fixpt sweep`")

    def run_point(self, spec, request: FitRequest) -> dict:
        model = spec.cls(from_dict(spec.config, request.model_config))
        metrics = model.run(from_dict(self.data_config, request.data), from_dict(self.run_config, request.train), request.out)
        RunDir(request.out).write_metrics(metrics)
        return metrics
