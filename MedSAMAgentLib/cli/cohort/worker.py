"""A batch worker: one engine, made once where the worker runs (a local process, a Ray
actor), running rows on it: a batch's rows as `segment` runs its options (`SegmentRow`),
an evaluation's as scored cases (`evaluation_rows.EvaluationRow`). Whatever a row does
wrong stays in its `RowResult`; only the loss of the worker itself reaches the scheduler.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ...errors import MedSAMAgentError
from .results import DONE, FAILED, RowResult, one_line

if TYPE_CHECKING:
    from ...engine.interface import Engine


class RowTask(Protocol):
    """What a row does on a worker's engine. Pickled to the worker: plain data only."""

    @property
    def segmenter(self) -> str | None:
        """The segmenter it needs (None: the engine's default)."""

    @property
    def uses_agent(self) -> bool: ...

    def complete(self) -> bool:
        """Whether everything the row writes is there, whole: the row need not run."""

    def run(self, engine: Engine, result: RowResult, started: float) -> None:
        """Run on `engine`, filling in `result` (a fault of the row's own: status FAILED and
        its error); raising means the row failed too."""


@dataclass(frozen=True)
class RowJob:
    """A checked row, ready to run: its task, and where its messages go."""

    row: int
    image: str
    output: str  # relative to the output folder, for the results
    task: RowTask
    log: Path
    attempt: int = 1

    def retried(self) -> RowJob:
        return RowJob(self.row, self.image, self.output, self.task, self.log, self.attempt + 1)


@dataclass(frozen=True)
class SegmentRow:
    """A batch row: `segment`'s options for it, run as `segment` runs them."""

    args: argparse.Namespace

    @property
    def segmenter(self) -> str | None:
        return self.args.segmenter

    @property
    def uses_agent(self) -> bool:
        return bool(self.args.target)

    def complete(self) -> bool:
        """Every file the row writes is there (each is renamed into place only when complete,
        so being there means being whole) and, for several targets, every target is in it: a
        target that failed leaves the others written, and its record says it failed."""
        from ...agent.records import RECORD_FILE
        from ...io.writers import output_paths
        from ...targets import parse_targets
        from ..targets import record_folder_paths

        targets = parse_targets(self.args.target)
        if not all(path.is_file() for path in output_paths(Path(self.args.output), len(targets) > 1)):
            return False
        if len(targets) < 2:  # a single target that fails writes nothing
            return True
        folders = record_folder_paths(self.args.save_trajectory, targets).values()
        return all(_record_status(folder / RECORD_FILE) == "done" for folder in folders)  # the record's word, not a row status

    def run(self, engine: Engine, result: RowResult, started: float) -> None:
        from ..segment_job import check_options, load_requests, run_and_write

        errors: list[str] = []
        segment_job = check_options(self.args)
        load_requests(segment_job)
        engine.preflight(self.args.segmenter, uses_agent=segment_job.uses_agent)
        result.segments, failed = run_and_write(segment_job, engine, None, None, errors.append, started)
        if failed:
            result.status, result.error = FAILED, "; ".join(errors)


def _record_status(path: Path) -> str:
    """How the job of an agent record ended ("" when there is no readable record)."""
    try:
        return json.loads(path.read_text())["outcome"]["status"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def peak_resident_mb() -> float:
    """This process's peak resident memory (Linux counts it in KiB, macOS in bytes; Windows
    has no `resource`: 0, left blank in the results)."""
    try:
        import resource
    except ImportError:
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


class RowWorker:
    """Runs rows on one engine made from the batch's options (`--server`: the server's)."""

    def __init__(self, options: argparse.Namespace, uses_agent: bool):
        from ..options import engine_from_args, use_models_folders

        use_models_folders(options)  # --from, in this process too (a Ray actor does not inherit the driver's environment)
        self.engine = engine_from_args(options, with_agent=uses_agent)
        self.name = f"{socket.gethostname()} pid {os.getpid()}"

    def run(self, job: RowJob) -> RowResult:
        started = time.perf_counter()
        result = RowResult(job.row, job.image, job.output, DONE, worker=self.name)
        with open(job.log, "a") as log, contextlib.redirect_stderr(log):
            print(f"row {job.row}, attempt {job.attempt}, on {self.name}", file=sys.stderr, flush=True)
            if job.attempt > 1 and job.task.complete():  # written just before its first worker was lost
                result.error = "written by an earlier attempt whose worker was lost"
            else:
                self._run(job, result, started)
            print(f"{result.status} in {time.perf_counter() - started:.1f} s" + (f": {result.error}" if result.error else ""), file=sys.stderr)
        result.seconds = time.perf_counter() - started
        result.worker_peak_mb = peak_resident_mb()
        return result

    def _run(self, job: RowJob, result: RowResult, started: float) -> None:
        try:
            job.task.run(self.engine, result, started)
        except MedSAMAgentError as error:
            result.status, result.error = FAILED, one_line(error)
        except Exception as error:  # a fault in this row must not take the worker's other rows with it
            result.status, result.error = FAILED, f"{type(error).__name__}: {one_line(error)}"
