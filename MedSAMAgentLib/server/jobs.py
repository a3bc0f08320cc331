"""The server's job queue: one worker thread per server process (one GPU) runs jobs one
at a time, in order; the queue has a limit; each job is its owner's alone.

A job carries its whole request, so nothing but caches is lost when the server restarts:
the client submits the job again. Finished jobs are kept for a while for their owner to
fetch, then forgotten.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from ..engine.interface import Engine, SegmentationRequest
from ..errors import Cancelled, MedSAMAgentError
from ..remote.wire import encode_outcome

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
KEEP_FINISHED_SECONDS = 600
KEEP_FINISHED_JOBS = 200

log = logging.getLogger("medsam_agent.server")


class QueueFull(MedSAMAgentError):
    def __init__(self, waiting: int):
        super().__init__(f"the server's queue is full ({waiting} jobs waiting); try again shortly")
        self.waiting = waiting


@dataclass
class Job:
    id: str
    owner: str
    request: SegmentationRequest | None  # dropped when the job ends: it holds the volume
    status: str = QUEUED
    step: str = "queued"
    done: int = 0
    total: int = 0
    error: str = ""
    error_type: str = ""
    records: list = field(default_factory=list)
    result: bytes | None = None
    version: int = 0  # bumped at every change, for clients waiting on one
    finished: float | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    stopped: threading.Event = field(default_factory=threading.Event)

    def progress(self, step: str, done: int, total: int) -> None:
        self.step, self.done, self.total = step, done, total
        self.version += 1

    def finish(self, status: str, error: MedSAMAgentError | None = None) -> None:
        if error is not None:
            self.error = str(error)
            self.error_type = type(error).__name__
            self.records = list(error.records)
        self.status, self.finished = status, time.time()
        self.request = None
        self.version += 1
        self.stopped.set()


class JobQueue:
    def __init__(self, engine: Engine, limit: int):
        self.engine = engine
        self.limit = limit
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._waiting: list[Job] = []
        self._condition = threading.Condition()
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="medsam-agent-worker", daemon=True)
        self._worker.start()

    # -- called by the web handlers -----------------------------------------------------
    def submit(self, job_id: str, owner: str, request: SegmentationRequest) -> tuple[Job, bool]:
        """(job, created): the same id from the same owner is the same job (a resent
        submission), never a second one."""
        with self._condition:
            self._forget_finished()
            existing = self._jobs.get(job_id)
            if existing is not None:
                if existing.owner != owner:
                    raise MedSAMAgentError("this job id is taken; use a new random id")
                return existing, False
            if len(self._waiting) >= self.limit:
                raise QueueFull(len(self._waiting))
            job = Job(job_id, owner, request)
            self._jobs[job_id] = job
            self._waiting.append(job)
            self._condition.notify()
        log.info("job %s from %s queued (%d waiting)", job_id, owner, len(self._waiting))
        return job, True

    def get(self, job_id: str, owner: str) -> Job | None:
        with self._condition:
            job = self._jobs.get(job_id)
        return job if job is not None and job.owner == owner else None

    def position(self, job: Job) -> int:
        """How many jobs run or wait before this one."""
        with self._condition:
            if job.status != QUEUED:
                return 0
            ahead = self._waiting.index(job) if job in self._waiting else 0
            return ahead + (1 if any(j.status == RUNNING for j in self._jobs.values()) else 0)

    def cancel(self, job: Job, wait_seconds: float) -> None:
        """Stop the job: a waiting job leaves the queue at once; a running one stops at its
        next slice or turn (waited for up to `wait_seconds`)."""
        with self._condition:
            if job in self._waiting:
                self._waiting.remove(job)
                job.finish(CANCELLED, Cancelled())
                return
        job.cancel_requested.set()
        job.stopped.wait(wait_seconds)

    def waiting(self) -> int:
        with self._condition:
            return len(self._waiting)

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            for job in self._waiting:
                job.cancel_requested.set()
            self._condition.notify_all()

    # -- the worker ---------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._waiting and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return
                job = self._waiting.pop(0)
                job.status, job.step = RUNNING, "starting"
                job.version += 1
            self._run(job)

    def _run(self, job: Job) -> None:
        started = time.perf_counter()
        try:
            outcome = self.engine.run(job.request, progress=job.progress, cancel=job.cancel_requested.is_set)
            job.result = encode_outcome(outcome)
            job.finish(DONE)
        except Cancelled as error:
            job.finish(CANCELLED, error)
        except MedSAMAgentError as error:
            job.finish(FAILED, error)
        except Exception as error:  # a bug must fail this job only, never the worker
            log.exception("job %s failed unexpectedly", job.id)
            job.finish(FAILED, MedSAMAgentError(f"the server failed on this job ({error.__class__.__name__}: {error})"))
        log.info("job %s from %s %s in %.1f s at step %d of %d", job.id, job.owner, job.status, time.perf_counter() - started,
                 job.done, job.total)

    def _forget_finished(self) -> None:
        limit = time.time() - KEEP_FINISHED_SECONDS
        finished = [job for job in self._jobs.values() if job.status in FINISHED]
        for number, job in enumerate(finished):
            if job.finished < limit or len(finished) - number > KEEP_FINISHED_JOBS:
                del self._jobs[job.id]
