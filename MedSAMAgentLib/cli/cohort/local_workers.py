"""Workers on this machine: each a process of its own that makes its engine once and runs
rows one at a time (`--workers N`). The same process runs the thin client's engine for
`--server URL`: each row then goes to the department server, exactly as `segment --server`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor

from .results import RowResult
from .worker import RowJob, RowWorker

_worker: RowWorker | None = None  # this process's worker, when it is one


def _start(options: argparse.Namespace, uses_agent: bool, threads: int) -> None:
    global _worker
    # Before torch or OpenVINO start their thread pools: N workers share the cores, not N x all.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    _worker = RowWorker(options, uses_agent)


def _run(job: RowJob) -> RowResult:
    return _worker.run(job)


class ProcessWorker:
    """One worker process (spawned, not forked: the parent may hold threads and models)."""

    def __init__(self, options: argparse.Namespace, uses_agent: bool, threads: int):
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(1, mp_context=context, initializer=_start, initargs=(options, uses_agent, threads))

    def submit(self, job: RowJob) -> Future:
        return self._pool.submit(_run, job)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)
