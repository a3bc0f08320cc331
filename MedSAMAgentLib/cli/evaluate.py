"""`medsam-agent eval`: score an agent policy on a manifest of cases with ground truth. The
cases run as batch rows (`cohort.evaluation_rows`): on several local workers or a Ray
cluster, and resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

from .batch import EXIT_INTERRUPTED, BatchProgress, add_worker_options
from .options import add_agent_options, add_model_options, info


def add_parser(commands) -> argparse.ArgumentParser:
    evaluation = commands.add_parser("eval", help="score an agent policy on a manifest of cases with ground truth")
    evaluation.add_argument("manifest", type=Path, help="CSV or JSON with image, mask, description [, slice, axis, labels]; "
                            "several targets per case: description \"liver; spleen\" and a label map")
    evaluation.add_argument("-o", "--output-dir", type=Path, required=True)
    add_agent_options(evaluation)
    evaluation.add_argument("--tolerance", type=float, default=2.0, help="surface Dice tolerance in mm (pixels for 2D images)")
    evaluation.add_argument("--find-slice", action="store_true", help="volumes without a slice column: let the agent search")
    evaluation.add_argument("--overwrite", action="store_true", help="score every case again (default: an unfinished evaluation of "
                                                                     "the same manifest and options goes on with the cases left)")
    evaluation.add_argument("--report", action="store_true", help="also write report.html: every case's turns, Dice plots")
    # No --server: the ground truth feeds the scoring and the simulated clinician, and never leaves this computer.
    add_worker_options(evaluation, server=False)
    add_model_options(evaluation)
    return evaluation


def run(args: argparse.Namespace) -> int:
    from ..agent.evaluation import CASES_FILE, summarise
    from .cohort.evaluation_rows import run_evaluation

    try:
        with BatchProgress() as progress:
            evaluation = run_evaluation(args, progress)
    except KeyboardInterrupt:  # each target scored is whole in scores/
        info(f"error: interrupted; the cases scored are kept in {args.output_dir}: run the same command again to score the rest")
        return EXIT_INTERRUPTED
    if evaluation.skipped:
        info(f"{evaluation.skipped} targets were scored by an earlier run and kept")
    for row in summarise(evaluation.results):
        print("  ".join(f"{key} {value}" for key, value in row.items()))
    info(f"wrote {args.output_dir / CASES_FILE}, summary.csv, summary.md and each case's agent record in records/")
    if args.report:
        from ..report import REPORT_FILE
        from .report import write_checked_report

        info(f"wrote {write_checked_report([args.output_dir], args.output_dir / REPORT_FILE, overwrite=True)}")
    return 0
