"""A batch from its manifest to its results: every row checked before any model runs (bad
rows reported at once, finished ones skipped), then the rest run on the workers the
options choose (local processes, the department server, a Ray cluster), one engine
interface throughout. `open_output_folder` and `run_jobs` are the steps an evaluation's
rows (`evaluation_rows`) take too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from ...errors import MedSAMAgentError, OutputError
from ...targets import folder_name
from ..segment_job import WrittenSegment
from .manifest import RECORDS_FOLDER, ManifestRow, SharedOptions, output_name, read_manifest, segment_arguments
from .results import FAILED, SKIPPED, ResultsFile, RowResult, earlier_segments, one_line
from .scheduler import run_rows
from .worker import RowJob, SegmentRow

LOGS_FOLDER = "logs"  # each row's messages: logs/rowNNNN.log
Rows = TypeVar("Rows")


class BatchEvents(Protocol):
    def checked(self, result: RowResult) -> None:
        """A row that will not run: skipped, or refused by the checks."""

    def running(self, rows: int, where: str) -> None:
        """The checks are over: `rows` rows run on `where`."""

    def finished(self, result: RowResult) -> None: ...

    def lost(self, job: RowJob, why: str) -> None:
        """A worker was lost while it held `job`; the row runs again elsewhere."""


@dataclass
class RowChecks:
    """What the checks of one batch have seen so far: the outputs claimed by earlier rows."""

    options: argparse.Namespace
    shared: SharedOptions
    earlier: dict[str, list[WrittenSegment]]  # the sizes an earlier run recorded, by output name
    claimed: dict[Path, int]

    def check(self, row: ManifestRow) -> RowJob | RowResult:
        """The row ready to run, or why it will not (skipped, or refused with one line)."""
        from ..segment_job import check_options, load_requests

        folder = Path(self.options.output_dir)
        name = output_name(row)
        refused = RowResult(row.number, row.image, name, FAILED)
        try:
            output = (folder / name).resolve()
            if folder not in output.parents:
                raise OutputError(f"output {name} lies outside the output folder {folder}")
            if output in self.claimed:
                raise OutputError(f"row {self.claimed[output]} writes {name} too")
            self.claimed[output] = row.number
            output.parent.mkdir(parents=True, exist_ok=True)
            args = segment_arguments(row, output, folder / RECORDS_FOLDER / folder_name(name), self.options, self.shared)
            if SegmentRow(args).complete() and not self.options.overwrite:
                return RowResult(row.number, row.image, name, SKIPPED, segments=self.earlier.get(name, []))
            # This row runs: its output is absent, or --overwrite asked to replace it (and its record).
            args.overwrite = True
            if args.save_trajectory:
                args.save_trajectory.parent.mkdir(exist_ok=True)
            # The volume is read here to check the row, and read again by its worker: holding every
            # row's volume until a worker takes it would cost the driver a cohort's memory.
            load_requests(check_options(args), log=lambda message: None)
        except MedSAMAgentError as error:
            refused.error = one_line(error)
            return refused
        return RowJob(row.number, row.image, name, SegmentRow(args), folder / LOGS_FOLDER / f"row{row.number:04d}.log")


def run_batch(options: argparse.Namespace, shared: SharedOptions, events: BatchEvents) -> ResultsFile:
    """Run the manifest `options.manifest` into `options.output_dir`; `shared`: the names of
    `segment`'s options that the batch's options give the rows."""
    rows = open_output_folder(options, lambda: read_manifest(options.manifest))
    checks = RowChecks(options, shared, earlier_segments(options.output_dir), {})
    results = ResultsFile(options.output_dir)
    jobs = []
    for row in rows:
        checked = checks.check(row)
        if isinstance(checked, RowJob):
            jobs.append(checked)
        else:
            results.add(checked)
            events.checked(checked)
    run_jobs(jobs, options, events, results.add)
    results.finish()
    return results


def open_output_folder(options: argparse.Namespace, read_rows: Callable[[], Rows]) -> Rows:
    """The rows `read_rows` reads, once they are read and the cluster (`--ray`) is joined:
    only then is the output folder `options.output_dir` (made absolute here) created, with
    its `logs`, so that a bad manifest or an unreachable cluster leaves nothing behind."""
    folder = Path(options.output_dir).resolve()
    if not folder.parent.is_dir():
        raise OutputError(f"folder {folder.parent} does not exist")
    options.output_dir = folder
    rows = read_rows()
    if options.ray:  # a cluster that cannot be joined is known before any row is read
        from .ray_workers import connect

        connect(options.ray)
    folder.mkdir(exist_ok=True)
    (folder / LOGS_FOLDER).mkdir(exist_ok=True)
    return rows


def run_jobs(jobs: list[RowJob], options: argparse.Namespace, events: BatchEvents, keep: Callable[[RowResult], None]) -> None:
    """Run the checked `jobs` on the workers `options` choose; `keep` hears of every job's
    result once, refused by the engine before any worker starts or finished by a worker."""
    uses_agent = any(job.task.uses_agent for job in jobs)
    if jobs and not options.ray:
        jobs = _preflight(jobs, options, uses_agent, keep, events)
    if not jobs:
        return
    start_worker, count, where = _workers(options, uses_agent)
    events.running(len(jobs), where)

    def finished(result: RowResult) -> None:
        keep(result)
        events.finished(result)

    run_rows(jobs, start_worker, count, finished, events.lost)


def _preflight(jobs: list[RowJob], options, uses_agent: bool, keep: Callable[[RowResult], None], events: BatchEvents) -> list[RowJob]:
    """Refuse here, before any worker starts, the rows whose weights are not on this machine
    or that the server refuses (Ray's nodes check their own, in their actors)."""
    from ..options import engine_from_args

    engine = engine_from_args(options, with_agent=uses_agent)
    refusals: dict[tuple, str] = {}
    runnable = []
    for job in jobs:
        key = (job.task.segmenter, job.task.uses_agent)
        if key not in refusals:
            try:
                engine.preflight(*key)
                refusals[key] = ""
            except MedSAMAgentError as error:
                refusals[key] = one_line(error)
        if refusals[key]:
            result = RowResult(job.row, job.image, job.output, FAILED, error=refusals[key])
            keep(result)
            events.checked(result)
        else:
            runnable.append(job)
    engine.close()
    return runnable


def _workers(options, uses_agent: bool):
    """(a function that starts one worker, how many, where they run)."""
    if options.ray:
        import ray

        from .ray_workers import RayWorker, actor_shape

        shape = actor_shape(ray.cluster_resources(), options.cores_per_worker, options.workers)
        return (lambda: RayWorker(options, uses_agent, shape)), shape.count, shape.describe()
    from .local_workers import ProcessWorker, threads_per_worker

    workers = options.workers or 1
    threads = threads_per_worker(workers)
    where = f"the server {options.server}" if options.server else f"this machine ({threads} cores each)"
    return (lambda: ProcessWorker(options, uses_agent, threads)), workers, f"{workers} local worker processes, on {where}"
