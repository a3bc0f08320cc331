"""One `segment` run as steps that `segment` and `batch` share, so that a batch row and the
same options given to `segment` make the same engine requests and the same output:

1. `check_options`: the options alone (targets, output paths, record folders), no file read;
2. `load_requests`: the volume read and checked, the engine's requests built and checked;
3. `run_and_write`: the requests run on an engine, the result written, each segment's size.

No step loads a model; the engine does, when it runs the first request.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PromptError
from ..targets import parse_targets
from .agent_record import check_trajectory_option
from .options import DEFAULT_POLICY, info
from .prompt_options import prompt_options_given, prompts_from_args
from .targets import read_ground_truths, record_folders, report_failures, run_targets


@dataclass
class WrittenSegment:
    """One segment of a written output: its name and size."""

    name: str
    voxels: int
    millilitres: float


@dataclass
class SegmentJob:
    """The work of one `segment` run, checked step by step (see the module's steps)."""

    args: argparse.Namespace
    targets: list[str]
    folders: dict[str, Path]
    volume: object | None = None  # io.volumes.Volume, once loaded
    plane: object | None = None  # orientation.SlicePlane of `args.axis`
    requests: list = field(default_factory=list)  # (segment name, engine.interface.SegmentationRequest)

    @property
    def uses_agent(self) -> bool:
        return bool(self.targets)


def check_options(args: argparse.Namespace) -> SegmentJob:
    """Refuse what the options alone make impossible (targets, output, record folders)."""
    from ..io.writers import check_output_path, output_paths

    targets = parse_targets(args.target)
    if args.target and not targets:
        raise PromptError('--target is empty: say what to segment, e.g. "liver; spleen"')
    several = len(targets) > 1
    if several and args.name:
        raise PromptError("--name names one segment; with several targets each segment is named after its target")
    for path in output_paths(args.output, several):
        check_output_path(path, args.overwrite, protected=[args.input])
    if args.montage:
        check_output_path(args.montage, args.overwrite, protected=[args.input, args.output])
    folders = record_folders(args.save_trajectory, targets)
    for folder in folders.values():
        check_trajectory_option(folder, args.overwrite)
    if not targets:
        _refuse_agent_options(args)
    return SegmentJob(args, targets, folders)


def load_requests(job: SegmentJob, log=info) -> None:
    """Read the volume and build the engine's requests (one per target), each checked."""
    from ..io.dicom_seg import check_dicom_output
    from ..io.volumes import read_volume
    from ..io.writers import check_free_space, output_suffix
    from ..orientation import SlicePlane

    args = job.args
    job.volume = volume = read_volume(args.input, series_uid=args.series_uid, log=log)
    if output_suffix(Path(args.output)) == ".dcm":
        check_dicom_output(volume, Path(args.output))
    check_free_space(Path(args.output), volume.geometry, max(len(job.targets), 1))
    job.plane = plane = SlicePlane.for_view(volume.geometry, args.axis)
    if job.targets:
        truths = read_ground_truths(args.gt, job.targets, volume, plane) if args.gt else [None] * len(job.targets)
        job.requests = [(target, _agent_request(args, volume, plane, target, truth)) for target, truth in zip(job.targets, truths)]
    else:
        job.requests = [(args.name or "Segment", _prompt_request(args, volume, plane, log))]
    for _, request in job.requests:
        request.check()


def run_and_write(job: SegmentJob, engine, progress, cancel, error_line, started: float, log=info) -> tuple[list[WrittenSegment], bool]:
    """Run every request on `engine` and write the output; a target that fails gets its
    `error_line` (and its record), the others are written. Returns the written segments and
    whether any target failed; raises when every target failed (nothing is then written).
    `started`: when the run began (`time.perf_counter()`), for the seconds reported."""
    from ..anatomy import segment_style
    from ..io.writers import write_segments

    args = job.args
    results = run_targets(engine, job.requests, progress, cancel, log, job.folders)
    failed = report_failures(results, error_line)
    done = [result for result in results if result.outcome is not None]
    for result in done:
        if job.targets:
            _report_agent(args, result.outcome, job.folders.get(result.target), log)
    styles = [segment_style(result.target, args.name) for result in done]
    write_segments([(result.outcome.mask, style) for result, style in zip(done, styles)], job.volume, Path(args.output),
                   _provenance(args, job.targets), sidecar=len(job.targets) > 1)
    if args.montage:
        from ..montage import montage
        from ..segmenters.base import slice_frames

        union = sum(result.outcome.mask.astype(bool) for result in done).astype(bool)
        frames = slice_frames(job.volume, args.axis, args.window, target=job.targets[0] if job.targets else None)
        montage(frames, job.plane.to_display(union), args.montage)
    seconds = time.perf_counter() - started
    geometry = job.volume.geometry
    for result, style in zip(done, styles):
        log(f"wrote {args.output}" + (f" [{style.name}]" if len(job.targets) > 1 else "") +
            f": {result.outcome.summary(geometry, seconds=seconds)}")
    written = []
    for result, style in zip(done, styles):
        voxels = int(result.outcome.mask.sum())
        written.append(WrittenSegment(style.name, voxels, voxels * geometry.voxel_volume_ml))
    return written, failed


def _provenance(args, targets):
    from ..io.dicom_seg import Provenance, agent_name
    from ..segmenters import DEFAULT_SEGMENTER

    segmenter = args.segmenter or ("server default" if args.server else DEFAULT_SEGMENTER)
    if not targets:
        return Provenance(segmenter, None)
    return Provenance(segmenter, agent_name(bool(args.server), args.policy or DEFAULT_POLICY, args.agent_model))


def _prompt_request(args, volume, plane, log):
    from ..engine.interface import SegmentationRequest

    given = prompts_from_args(args, volume, plane)
    further = f"; prompts on {plane.view} slices {', '.join(map(str, sorted(given.prompts_at)))} too" if given.prompts_at else ""
    log(f"{args.axis} key slice {given.key_slice}{further}")
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


def _report_agent(args, outcome, trajectory_folder: Path | None, log) -> None:
    key = outcome.records[0]
    line = f"key slice {outcome.key_slice}: {key.actions} actions, {key.invalid_turns} invalid turns, ended by {key.end_reason}"
    if args.recheck:
        reviews = sum(1 for record in outcome.records if record.role == "review")
        line += f"; {reviews} slices reviewed, {len(outcome.corrections)} corrected"
    log(line)
    if trajectory_folder:
        from ..agent.records import write_records

        done = {"status": "done", "key_slice": outcome.key_slice, "corrections": outcome.corrections}
        log(f"wrote the agent's record in {write_records(outcome.records, trajectory_folder, done)}")
