"""`medsam-agent segment`: one structure in a volume from prompts, or one or several from
their descriptions (`cli.targets`), on this computer or on a server (`--server URL`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import PromptError
from ..orientation import VIEWS
from ..targets import parse_targets
from .agent_record import cancel_on_interrupt, check_trajectory_option
from .options import DEFAULT_POLICY, SERVER_KEY_ENV, add_agent_options, add_model_options, engine_from_args, info
from .progress_bar import ProgressBar
from .prompt_options import add_prompt_options, prompt_options_given, prompts_from_args
from .targets import EXIT_SOME_TARGETS_FAILED, read_ground_truths, record_folders, report_failures, run_targets


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
    from ..anatomy import segment_style
    from ..io.dicom_seg import check_dicom_output
    from ..io.volumes import read_volume
    from ..io.writers import check_free_space, check_output_path, output_paths, output_suffix, write_segments
    from ..orientation import SlicePlane

    started = time.perf_counter()
    targets = parse_targets(args.target)
    if args.target and not targets:
        raise PromptError('--target is empty: say what to segment, e.g. "liver; spleen"')
    several = len(targets) > 1
    if several and args.name:
        raise PromptError("--name names one segment; with several targets each segment is named after its target")
    for path in output_paths(args.output, several):
        check_output_path(path, args.overwrite, protected=[args.input])
    output = Path(args.output)
    if args.montage:
        check_output_path(args.montage, args.overwrite, protected=[args.input, args.output])
    folders = record_folders(args.save_trajectory, targets)
    for folder in folders.values():
        check_trajectory_option(folder, args.overwrite)
    if not targets:
        _refuse_agent_options(args)
    engine = engine_from_args(args, with_agent=bool(targets))
    volume = read_volume(args.input, series_uid=args.series_uid, log=info)
    if output_suffix(output) == ".dcm":
        check_dicom_output(volume, output)
    check_free_space(output, volume.geometry, max(len(targets), 1))
    plane = SlicePlane.for_view(volume.geometry, args.axis)
    if targets:
        truths = read_ground_truths(args.gt, targets, volume, plane) if args.gt else [None] * len(targets)
        requests = [(target, _agent_request(args, volume, plane, target, truth)) for target, truth in zip(targets, truths)]
    else:
        requests = [(args.name or "Segment", _prompt_request(args, volume, plane))]
    # Everything this computer can check first, then the weights or the server (and its key).
    for _, request in requests:
        request.check()
    engine.preflight(args.segmenter, uses_agent=bool(targets))
    info(f"{volume.description}: {volume.geometry.size} voxels, {volume.modality}; running on {engine.describe()}")
    with ProgressBar() as bar, cancel_on_interrupt() as cancel:
        results = run_targets(engine, requests, bar.update, cancel, info, folders)
    failed = report_failures(results, lambda line: print(f"error: {line}", file=sys.stderr))
    done = [result for result in results if result.outcome is not None]
    for result in done:
        if targets:
            _report_agent(args, result.outcome, folders.get(result.target))
    styles = [segment_style(result.target, args.name) for result in done]
    write_segments([(result.outcome.mask, style) for result, style in zip(done, styles)], volume, output, _provenance(args, targets),
                   sidecar=several)
    if args.montage:
        from ..montage import montage
        from ..segmenters.base import slice_frames

        union = sum(result.outcome.mask.astype(bool) for result in done).astype(bool)
        frames = slice_frames(volume, args.axis, args.window, target=targets[0] if targets else None)
        montage(frames, plane.to_display(union), args.montage)
    seconds = time.perf_counter() - started
    for result, style in zip(done, styles):
        info(f"wrote {output}" + (f" [{style.name}]" if several else "") + f": {result.outcome.summary(volume.geometry, seconds=seconds)}")
    return EXIT_SOME_TARGETS_FAILED if failed else 0


def _provenance(args, targets):
    from ..io.dicom_seg import Provenance
    from ..segmenters import DEFAULT_SEGMENTER

    segmenter = args.segmenter or ("server default" if args.server else DEFAULT_SEGMENTER)
    if not targets:
        return Provenance(segmenter, None)
    policy = "the server's agent" if args.server else (args.policy or DEFAULT_POLICY) + (f" {args.agent_model}" if args.agent_model else "")
    return Provenance(segmenter, policy)


def _prompt_request(args, volume, plane):
    from ..engine.interface import SegmentationRequest

    given = prompts_from_args(args, volume, plane)
    further = f"; prompts on {plane.view} slices {', '.join(map(str, sorted(given.prompts_at)))} too" if given.prompts_at else ""
    info(f"{args.axis} key slice {given.key_slice}{further}")
    return SegmentationRequest(
        volume=volume,
        view=args.axis,
        window=args.window,
        key_slice=given.key_slice,
        prompts=given.prompts,
        prompts_at=given.prompts_at,
        slice_range=given.slice_range,
        seeded_components_only=not args.all_components,
        segmenter=args.segmenter,
    )


def _agent_request(args, volume, plane, target: str, truth):
    from ..engine.interface import SegmentationRequest

    if prompt_options_given(args):
        raise PromptError(f"give either --target (the agent places the prompts) or {prompt_options_given(args)[0]}, not both")
    if (args.slice is None) == (not args.find_slice):
        raise PromptError("with --target, give the key slice with --slice K, or --find-slice to let the agent find it")
    if args.policy == "clinician" and truth is None:
        raise PromptError("--policy clinician simulates a clinician from the ground truth: give it with --gt MASK")
    if truth is not None and args.server:
        raise PromptError("--gt feeds the simulated clinician, which runs on this computer only; drop --server")
    return SegmentationRequest(
        volume=volume,
        view=args.axis,
        window=args.window,
        key_slice=None if args.find_slice else plane.check_slice(args.slice),
        target=target,
        slice_range=tuple(args.range) if args.range else None,
        seeded_components_only=not args.all_components,
        segmenter=args.segmenter,
        recheck_every=args.recheck,
        truth=truth,
    )


def _refuse_agent_options(args) -> None:
    used = [option for option, value in (("--find-slice", args.find_slice), ("--recheck", args.recheck), ("--gt", args.gt),
                                         ("--policy", args.policy), ("--save-trajectory", args.save_trajectory)) if value]
    if used:
        raise PromptError(f"{', '.join(used)} apply to the agent: give --target too")


def _report_agent(args, outcome, trajectory_folder: Path | None) -> None:
    key = outcome.records[0]
    line = f"key slice {outcome.key_slice}: {key.actions} actions, {key.invalid_turns} invalid turns, ended by {key.end_reason}"
    if args.recheck:
        reviews = sum(1 for record in outcome.records if record.role == "review")
        line += f"; {reviews} slices reviewed, {len(outcome.corrections)} corrected"
    info(line)
    if trajectory_folder:
        from ..engine.records import write_records

        done = {"status": "done", "key_slice": outcome.key_slice, "corrections": outcome.corrections}
        info(f"wrote the agent's record in {write_records(outcome.records, trajectory_folder, done)}")
