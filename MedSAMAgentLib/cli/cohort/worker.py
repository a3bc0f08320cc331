"""A batch worker: one engine, made once where the worker runs (a local process, a Ray
actor), running rows as `segment` runs its options. Whatever a row does wrong stays in its
`RowResult`; only the loss of the worker itself reaches the scheduler.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ...errors import MedSAMAgentError
from .results import DONE, FAILED, RowResult, one_line


@dataclass(frozen=True)
class RowJob:
    """A checked row, ready to run: `segment`'s options for it, and where its messages go."""

    row: int
    image: str
    output: str  # relative to the output folder, for the results
    args: argparse.Namespace
    log: Path
    attempt: int = 1

    def retried(self) -> RowJob:
        return RowJob(self.row, self.image, self.output, self.args, self.log, self.attempt + 1)


def outputs_complete(args: argparse.Namespace) -> bool:
    """Whether every file the row writes is there (each is renamed into place only when
    complete, so being there means being whole)."""
    from ...io.writers import output_paths
    from ...targets import parse_targets

    return all(path.is_file() for path in output_paths(Path(args.output), len(parse_targets(args.target)) > 1))


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
            if job.attempt > 1 and outputs_complete(job.args):  # written just before its first worker was lost
                result.error = "written by an earlier attempt whose worker was lost"
            else:
                self._segment(job, result, started)
            print(f"{result.status} in {time.perf_counter() - started:.1f} s" + (f": {result.error}" if result.error else ""), file=sys.stderr)
        result.seconds = time.perf_counter() - started
        result.worker_peak_mb = peak_resident_mb()
        return result

    def _segment(self, job: RowJob, result: RowResult, started: float) -> None:
        from ..segment_job import check_options, load_requests, run_and_write

        errors: list[str] = []
        try:
            segment_job = check_options(job.args)
            load_requests(segment_job)
            self.engine.preflight(job.args.segmenter, uses_agent=segment_job.uses_agent)
            result.segments, failed = run_and_write(segment_job, self.engine, None, None, errors.append, started)
        except MedSAMAgentError as error:
            result.status, result.error = FAILED, one_line(error)
            return
        except Exception as error:  # a fault in this row must not take the worker's other rows with it
            result.status, result.error = FAILED, f"{type(error).__name__}: {one_line(error)}"
            return
        if failed:
            result.status, result.error = FAILED, "; ".join(errors)
