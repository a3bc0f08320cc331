"""`medsam-agent segment`: one structure in a volume from prompts, or one or several from
their descriptions (`cli.targets`), on this computer or on a server (`--server URL`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..orientation import VIEWS
from .agent_record import cancel_on_interrupt
from .options import SERVER_KEY_ENV, add_agent_options, add_model_options, engine_from_args, info
from .progress_bar import ProgressBar
from .prompt_options import add_prompt_options
from .segment_job import check_options, load_requests, run_and_write
from .targets import EXIT_SOME_TARGETS_FAILED


def add_parser(commands) -> argparse.ArgumentParser:
    segment = commands.add_parser("segment", help="segment one or several structures in a volume")
    segment.add_argument("input", type=Path, help="NIfTI, NRRD/NHDR, MHA/MHD file, DICOM series folder or multi-frame DICOM file")
    segment.add_argument("-o", "--output", type=Path, required=True,
                         help=".seg.nrrd, .nii.gz, .nii, .nrrd, .mha, or .dcm (DICOM SEG, for a DICOM input)")
    segment.add_argument("--axis", choices=VIEWS, default="axial")
    add_prompt_options(segment)
    segment.add_argument("--window", help="CT preset (abdomen, lung, brain, mediastinum, bone), W/L such as 400/40, or percentile")
    segment.add_argument("--all-components", action="store_true",
                         help="keep every 3D connected component, not only those holding a prompted slice")
    segment.add_argument("--name", help="segment name (default: the target, or 'Segment')")
    add_model_options(segment)
    segment.add_argument("--server", metavar="URL", help=f"run on a MedSAM-Agent server (its key in ${SERVER_KEY_ENV})")
    agent = segment.add_argument_group("agent", "let MedSAM-Agent place the prompts from a description")
    agent.add_argument("--target", action="append", help='what to segment, e.g. "right kidney in abdomen CT"; several: '
                                                      '"liver; spleen" or --target repeated (one segment each)')
    agent.add_argument("--find-slice", action="store_true", help="let the agent find the key slice")
    add_agent_options(agent)
    agent.add_argument("--gt", type=Path, action="append", default=[],
                       help="ground-truth mask on the input grid (for --policy clinician): one per target, or one label map "
                            "whose label n is the n-th target")
    agent.add_argument("--recheck", type=int, metavar="N", help="let the agent review the propagated mask every N slices")
    agent.add_argument("--save-trajectory", type=Path, metavar="DIR",
                       help="write the agent's record (every turn as JSON and PNG), also when the run fails or is cancelled")
    segment.add_argument("--series-uid", help="DICOM series to read when the folder holds several")
    segment.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    segment.add_argument("--montage", type=Path, help="also write a PNG of slices with the mask overlaid")
    return segment


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    job = check_options(args)
    engine = engine_from_args(args, with_agent=job.uses_agent)
    load_requests(job)
    volume = job.volume
    # Everything this computer can check first, then the weights or the server (and its key).
    engine.preflight(args.segmenter, uses_agent=job.uses_agent)
    info(f"{volume.description}: {volume.geometry.size} voxels, {volume.modality}; running on {engine.describe()}")
    error_lines: list[str] = []
    with ProgressBar() as bar, cancel_on_interrupt() as cancel:
        _, failed = run_and_write(job, engine, bar.update, cancel, error_lines.append, started)
    for line in error_lines:  # once the bar is gone, so that each starts its own line
        print(f"error: {line}", file=sys.stderr)
    return EXIT_SOME_TARGETS_FAILED if failed else 0
