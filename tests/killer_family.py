"""A test plugin family (loaded through ``FIXPT_FAMILIES``): a model whose sweep point kills its own
process when ``die`` is set, as the OOM killer would, and otherwise records a score."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

from fixpt.registry import register, register_task
from fixpt.tasks import Metric, Task
from fixpt.training.rundir import RunDir


@dataclass
class KillerConfig:
    die: bool = field(default=False, metadata={"help": "kill the worker process"})


@dataclass
class KillerData:
    value: float = field(default=1.0, metadata={"help": "the score it records"})
    sleep: float = field(default=0.0, metadata={"help": "seconds the run takes"})


@dataclass
class KillerRun:
    seed: int = field(default=0, metadata={"help": "seed"})


@register_task
class KillerTask(Task):
    name = "killer-task"
    data_config = KillerData
    train_config = KillerRun
    trains = False
    metric = Metric("score")

    def run_point(self, spec, request):
        if request.model_config.get("die"):
            os.kill(os.getpid(), signal.SIGKILL)
        with open(request.out / "trained.txt", "a") as log:  # one line per time the run is trained
            log.write(f"{os.getpid()}\n")
        time.sleep(request.data.get("sleep", 0.0))
        metrics = {"model": spec.name, "task": self.name, "test_score": request.data.get("value", 1.0)}
        RunDir(request.out).write_metrics(metrics)
        return metrics


@register("killer", config=KillerConfig, task="killer-task")
class Killer:
    """A model that trains nothing."""
