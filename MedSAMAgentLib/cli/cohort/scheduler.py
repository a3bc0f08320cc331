"""Rows handed to workers, one at a time each, wherever the workers run. A worker is
anything that takes a row and gives back a future of its `RowResult` (a local process, a
Ray actor). A future that fails means the worker was lost (a row's own faults come back as
failed results): the worker is replaced and its row goes to the next free worker, up to
`MAX_ATTEMPTS` times, so a lost worker loses no row and no row is written twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Protocol

from .results import FAILED, RowResult, first_sentence, one_line
from .worker import RowJob

MAX_ATTEMPTS = 3


class Worker(Protocol):
    def submit(self, job: RowJob) -> Future: ...

    def close(self) -> None: ...


def run_rows(jobs: list[RowJob], start_worker: Callable[[], Worker], count: int, on_result: Callable[[RowResult], None],
             on_lost: Callable[[RowJob, str], None] = lambda job, why: None) -> None:
    """Run every job on `count` workers made by `start_worker`, calling `on_result` once per
    job. `on_lost` hears of each worker lost and the row it held."""
    pending = deque(jobs)
    idle = [start_worker() for _ in range(min(count, len(jobs)))]
    running: dict[Future, tuple[Worker, RowJob]] = {}
    try:
        while pending or running:
            while idle and pending:
                worker, job = idle.pop(), pending.popleft()
                running[worker.submit(job)] = (worker, job)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                worker, job = running.pop(future)
                error = future.exception()
                if error is None:
                    idle.append(worker)
                    on_result(future.result())
                    continue
                worker.close()
                why = first_sentence(one_line(error))
                on_lost(job, why)
                if job.attempt >= MAX_ATTEMPTS:
                    on_result(RowResult(job.row, job.image, job.output, FAILED,
                                        error=f"its worker was lost {job.attempt} times; last: {why}"))
                else:
                    pending.appendleft(job.retried())
                if pending:
                    idle.append(start_worker())
    finally:
        for worker in idle + [worker for worker, _ in running.values()]:
            worker.close()
