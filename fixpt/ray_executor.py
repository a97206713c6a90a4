"""``fixpt sweep --executor ray``: the sweep's jobs as Ray tasks, on a Ray cluster or a local Ray instance.

Each job (one run, or one seed batch) is one task asking for ``cpus`` CPUs (and one GPU for CUDA runs).
The tasks write their run folders themselves, exactly as local workers do (claims, atomic files,
``metrics.json`` last), so the sweep folder must be reachable from every node: on one machine any
folder, on a cluster a shared filesystem (NFS, Lustre, ...). The driver receives each run's result to
count and display it. A task whose worker dies (killed by a signal or for lack of memory) fails its own
runs; Ray does not retry it (``max_retries=0``), and rerunning the sweep retries it like any failed run.
Requires the ``ray`` package (``pip install 'fixpt[ray]'``).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable

from .errors import FixptError
from .workers import WORKER_DIED


def _job_on_ray(work: Callable, job: list, threads: int) -> list[dict]:
    import torch

    torch.set_num_threads(threads)
    return work(job)


class RayPool:
    """Jobs as Ray tasks, at most as many in flight as the cluster has room for; the same ``start`` /
    ``finish`` / ``died`` callbacks as :class:`fixpt.workers.WorkerPool`."""

    def __init__(self, address: str | None, cpus: int, device: str, work: Callable, start: Callable, finish: Callable,
                 died: Callable):
        try:
            import ray
        except ImportError:
            raise FixptError("--executor ray needs the ray package: pip install 'fixpt[ray]' (or pip install ray)") from None
        self.ray, self.address, self.cpus, self.device = ray, address, cpus, device
        self.work, self.start, self.finish, self.died = work, start, finish, died

    def run(self, jobs: list) -> None:
        # Ray's driver prints cluster messages (e.g. a worker that died) on stdout from a background thread:
        # while it runs, stdout is stderr, so `--json` output stays one clean document
        with contextlib.redirect_stdout(sys.stderr):
            self._run(jobs)

    def _run(self, jobs: list) -> None:
        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise FixptError(f"could not reach a Ray cluster at {self.address or 'a new local instance'} "
                                 f"({str(e).splitlines()[0][:120]}); start one (ray start --head) or drop --ray-address") from None
        try:
            self._drain(list(jobs))
        finally:
            if started_here:
                ray.shutdown()

    def _drain(self, queue: list) -> None:
        ray = self.ray
        resources = ray.cluster_resources()
        gpus = 1 if self.device != "cpu" and resources.get("GPU", 0) >= 1 else 0
        room = max(1, int(resources.get("GPU", 0)) if gpus else int(resources.get("CPU", 1) // self.cpus))
        task = ray.remote(num_cpus=self.cpus, num_gpus=gpus, max_retries=0)(_job_on_ray)
        pending: dict = {}
        while queue or pending:
            while queue and len(pending) < room:
                job = queue.pop(0)
                self.start(job)
                pending[task.remote(self.work, job, self.cpus)] = job
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ref)
            try:
                results = ray.get(ref)
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.RayTaskError,
                    ray.exceptions.TaskUnschedulableError) as e:
                results = self.died(job, str(e).splitlines()[0] if isinstance(e, ray.exceptions.RayTaskError) else WORKER_DIED)
            self.finish(job, results)
