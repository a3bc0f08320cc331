"""`medsam-agent eval`: score an agent policy on a manifest of cases with ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import OutputError
from .options import add_agent_options, add_model_options, info, local_engine
from .progress_bar import ProgressBar


def add_parser(commands) -> argparse.ArgumentParser:
    evaluation = commands.add_parser("eval", help="score an agent policy on a manifest of cases with ground truth")
    evaluation.add_argument("manifest", type=Path, help="CSV or JSON with image, mask, description [, slice, axis, labels]; "
                            "several targets per case: description \"liver; spleen\" and a label map")
    evaluation.add_argument("-o", "--output-dir", type=Path, required=True)
    add_agent_options(evaluation)
    evaluation.add_argument("--tolerance", type=float, default=2.0, help="surface Dice tolerance in mm (pixels for 2D images)")
    evaluation.add_argument("--find-slice", action="store_true", help="volumes without a slice column: let the agent search")
    evaluation.add_argument("--overwrite", action="store_true", help="replace earlier reports in the output folder")
    evaluation.add_argument("--report", action="store_true", help="also write report.html: every case's turns, Dice plots")
    add_model_options(evaluation)
    return evaluation


def run(args: argparse.Namespace) -> int:
    from ..agent.evaluation import evaluate, read_manifest, summarise

    if (args.output_dir / "cases.csv").exists() and not args.overwrite:
        raise OutputError(f"{args.output_dir} already holds an evaluation; pass --overwrite to replace it")
    read_manifest(args.manifest)  # fail on a bad manifest before loading models
    engine = local_engine(args, with_agent=True)
    policy, segmenter = engine.policy(), engine.segmenter()
    with ProgressBar() as bar:
        results = evaluate(args.manifest, args.output_dir, policy, segmenter, args.tolerance, args.find_slice, progress=bar.update)
    for row in summarise(results):
        print("  ".join(f"{key} {value}" for key, value in row.items()))
    info(f"wrote {args.output_dir / 'cases.csv'}, summary.csv, summary.md and each case's agent record in records/")
    if args.report:
        from ..report import REPORT_FILE
        from .report import write_checked_report

        info(f"wrote {write_checked_report([args.output_dir], args.output_dir / REPORT_FILE, overwrite=True)}")
    return 0
