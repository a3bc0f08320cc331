"""`medsam-agent batch MANIFEST -o DIR`: a cohort, one `segment` per manifest row, on local
worker processes, on the department server, or on a Ray cluster (`MedSAMAgentLib.cli.cohort`).
Rows that fail stay in their line of `DIR/results.csv`; the exit status is
`EXIT_SOME_ROWS_FAILED` when any row failed."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .options import SERVER_KEY_ENV, add_agent_options, add_model_options, info

EXIT_SOME_ROWS_FAILED = 3
EXIT_INTERRUPTED = 130


def add_parser(commands) -> argparse.ArgumentParser:
    batch = commands.add_parser("batch", help="segment a cohort: one segment run per manifest row, resumable, on several workers")
    batch.add_argument("manifest", type=Path, help="CSV or JSON list with image and target (or slice, box, points) per row, and "
                                                   "optionally range, axis, window, segmenter, gt, output")
    batch.add_argument("-o", "--output-dir", type=Path, required=True, help="where the outputs, results.csv, logs/ and records/ go")
    batch.add_argument("--overwrite", action="store_true", help="run finished rows again (default: skip them)")
    add_worker_options(batch, server=True)
    batch.add_argument("--find-slice", action="store_true", help="target rows without a slice: let the agent find the key slice")
    batch.add_argument("--all-components", action="store_true", help="keep every 3D connected component (as segment's option)")
    add_model_options(batch)
    add_agent_options(batch.add_argument_group("agent", "for the rows with a target"))
    batch.add_argument("--recheck", type=int, metavar="N", help="let the agent review the propagated mask every N slices")
    return batch


def add_worker_options(parser: argparse.ArgumentParser, server: bool) -> None:
    """Where the rows run (`batch`, and `eval`, whose cases run as rows): local worker
    processes, a Ray cluster and, with `server`, the department server."""
    parser.add_argument("--workers", type=_positive, metavar="N", help="worker processes on this machine (default 1); with --ray, at most N actors")
    where = parser.add_mutually_exclusive_group()
    if server:
        where.add_argument("--server", metavar="URL", help=f"send each row to a MedSAM-Agent server (its key in ${SERVER_KEY_ENV})")
    else:
        parser.set_defaults(server=None)
    where.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster: its address, or auto for the one this machine is in")
    parser.add_argument("--cores-per-worker", type=float, default=4.0, metavar="N",
                        help="with --ray on a cluster without GPUs: cores per actor (default 4); with GPUs: one actor per GPU")


def shared_options():
    """The names of `segment`'s options that the batch's options give the rows."""
    from .cohort.manifest import SharedOptions

    def names(add_options) -> tuple[str, ...]:
        parser = argparse.ArgumentParser(add_help=False)
        add_options(parser)
        return tuple(vars(parser.parse_args([])))

    return SharedOptions(every_row=(*names(add_model_options), "server", "all_components"),
                         target_rows=(*names(add_agent_options), "recheck"))


def run(args: argparse.Namespace) -> int:
    from .cohort.cohort import run_batch
    from .cohort.results import FAILED

    started = time.perf_counter()
    try:
        with BatchProgress() as progress:
            results = run_batch(args, shared_options(), progress)
    except KeyboardInterrupt:  # the rows done are whole and in results.csv; none is half-written
        info(f"error: interrupted; the rows done are kept (see {args.output_dir / 'results.csv'}): run the same command again "
             "to finish the rest")
        return EXIT_INTERRUPTED
    counts = results.counts()
    minutes = (time.perf_counter() - started) / 60
    rate = f", {counts['done'] / minutes:.1f} rows/min" if counts["done"] else ""
    info(f"{len(results.results)} rows: {counts['done']} done, {counts['skipped']} skipped, {counts[FAILED]} failed "
         f"in {minutes * 60:.0f} s{rate}; results in {results.path}")
    return EXIT_SOME_ROWS_FAILED if counts[FAILED] else 0


class BatchProgress:
    """One bar over the rows that run (done, failed, rows per minute, time left); refused and
    skipped rows, and lost workers, get a line each above it."""

    def __enter__(self):
        self._bar = None
        self._counts = {"done": 0, "failed": 0}
        return self

    def checked(self, result) -> None:
        if result.status == "failed":
            self._line(f"error: row {result.row} ({result.image}): {result.error}")

    def running(self, rows: int, where: str) -> None:
        from tqdm import tqdm

        info(f"running {rows} rows on {where}")
        self._started = time.perf_counter()
        self._bar = tqdm(total=rows, unit="row", file=sys.stderr, dynamic_ncols=True, desc="rows")

    def finished(self, result) -> None:
        self._counts[result.status] = self._counts.get(result.status, 0) + 1
        if result.status == "failed":
            self._line(f"error: row {result.row} ({result.image}): {result.error}")
        per_minute = self._counts["done"] / max(time.perf_counter() - self._started, 1e-9) * 60
        self._bar.set_postfix_str(f"{self._counts['done']} done, {self._counts['failed']} failed, {per_minute:.1f}/min", refresh=False)
        self._bar.update(1)

    def lost(self, job, why: str) -> None:
        self._line(f"warning: the worker running row {job.row} was lost ({why}); the row runs again")

    def _line(self, text: str) -> None:
        if self._bar is None:
            info(text)
        else:
            self._bar.write(text, file=sys.stderr)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.close()
        return False


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value
