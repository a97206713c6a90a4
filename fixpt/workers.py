"""Sweep jobs on worker processes, where a worker that dies fails its own job only.

A worker killed by the OOM killer or a signal breaks a ``ProcessPoolExecutor``: every job in flight then
reports ``BrokenProcessPool``, and nothing tells which one's worker died. So the pool is rebuilt and the
jobs that were in flight become *suspects*, rerun one at a time: a suspect that breaks its pool alone is
the one that kills its worker and is recorded as failed; the others finish normally. Then the remaining
jobs go on in parallel.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

WORKER_DIED = "its worker process died (killed by a signal, or by the system for lack of memory)"


def _init_worker(threads: int, devices) -> None:
    import torch

    if sys.platform.startswith("linux"):  # die with the sweep: an orphan would go on training from its queue
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the sweep died before the line above
            os._exit(1)
    torch.set_num_threads(threads)
    if devices is not None:  # one GPU per worker process
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get())


class WorkerPool:
    """``run(jobs)`` calls ``work(job)`` (a picklable function returning one result per run of the job) on
    ``workers`` processes; ``start(job)`` before each job, ``finish(job, results)`` after, and
    ``died(job)`` for a job whose worker died (it returns the job's failed results)."""

    def __init__(self, workers: int, work: Callable, start: Callable, finish: Callable, died: Callable, devices=None):
        self.workers, self.work, self.start, self.finish, self.died = workers, work, start, finish, died
        self.ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
        self.initargs = (max(1, (os.cpu_count() or 1) // workers), devices)

    def run(self, jobs: list) -> None:
        queue, suspects = deque(jobs), deque()
        while queue or suspects:
            with ProcessPoolExecutor(max_workers=self.workers, mp_context=self.ctx, initializer=_init_worker,
                                     initargs=self.initargs) as pool:
                broken = self._drain(pool, queue, suspects)
            if len(broken) == 1:
                self.finish(broken[0], self.died(broken[0]))  # it was alone in flight: its own worker died
            else:
                suspects.extend(broken)  # rerun one at a time to find whose worker dies

    def _drain(self, pool: ProcessPoolExecutor, queue: deque, suspects: deque) -> list:
        """Run jobs until all are done or the pool breaks; returns the jobs in flight at the break."""
        pending: dict = {}
        while queue or suspects or pending:
            while (suspects and not pending) or (queue and not suspects and len(pending) < self.workers):
                job = suspects.popleft() if suspects else queue.popleft()
                self.start(job)
                pending[pool.submit(self.work, job)] = job
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                if isinstance(fut.exception(), BrokenProcessPool):
                    return list(pending.values())
                self.finish(pending.pop(fut), fut.result())
        return []
