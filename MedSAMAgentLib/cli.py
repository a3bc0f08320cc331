"""The `medsam-agent` command: segment a volume from prompts, or run the demo.

Every user error ends with one line on stderr starting with 'error:' and exit status 2;
nothing is written unless the whole run succeeds.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from .agent.policies import POLICIES
from .errors import MedSAMAgentError, PromptError
from .orientation import VIEWS
from .segmenters import DEFAULT_RUNTIME, DEFAULT_SEGMENTER, RUNTIME_CHOICES, SEGMENTERS
from .segmenters.devices import DEVICE_CHOICES

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medsam-agent",
        description="Promptable 3D segmentation of CT and MRI volumes with LiteMedSAM or MedSAM2.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", required=True)

    segment = commands.add_parser("segment", help="segment one structure in a volume")
    segment.add_argument("input", type=Path, help="NIfTI, NRRD/NHDR, MHA/MHD file or DICOM series folder")
    segment.add_argument("-o", "--output", type=Path, required=True, help=".seg.nrrd, .nii.gz, .nii, .nrrd or .mha")
    segment.add_argument("--slice", type=int, help="key slice: voxel index along the array axis closest to --axis")
    segment.add_argument("--axis", choices=VIEWS, default="axial")
    segment.add_argument("--box", type=float, nargs=4, metavar=("I0", "J0", "I1", "J1"),
                         help="box on the key slice: the two in-plane voxel indices (index order), minimum then maximum, inclusive")
    segment.add_argument("--box-ras", type=float, nargs=6, metavar=("R0", "A0", "S0", "R1", "A1", "S1"),
                         help="box as two opposite corners in RAS mm (as Slicer shows them)")
    segment.add_argument("--point", nargs=3, action="append", default=[], metavar=("I", "J", "pos|neg"),
                         help="a click on the key slice (in-plane voxel indices); repeatable")
    segment.add_argument("--point-ras", nargs=4, action="append", default=[], metavar=("R", "A", "S", "pos|neg"),
                         help="a click in RAS mm; repeatable")
    segment.add_argument("--range", type=int, nargs=2, metavar=("A", "B"),
                         help="propagate over slices A..B (inclusive) instead of until the object disappears")
    segment.add_argument("--window", help="CT preset (abdomen, lung, brain, mediastinum, bone), W/L such as 400/40, or percentile")
    segment.add_argument("--all-components", action="store_true", help="keep every 3D connected component, not only the largest")
    segment.add_argument("--name", help="segment name (default: the target, or 'Segment')")
    _add_model_options(segment)
    agent = segment.add_argument_group("agent", "let MedSAM-Agent place the prompts from a description")
    agent.add_argument("--target", help='what to segment, e.g. "right kidney in abdomen CT"')
    agent.add_argument("--find-slice", action="store_true", help="let the agent find the key slice")
    agent.add_argument("--policy", choices=POLICIES, default="qwen", help="who places prompts (default: qwen)")
    agent.add_argument("--agent-model", help="local model folder or Hugging Face id (qwen policy) or served model name (endpoint)")
    agent.add_argument("--endpoint", help="URL of an OpenAI-compatible server running MedSAM-Agent")
    agent.add_argument("--api-key-env", default="MEDSAM_AGENT_API_KEY", help="environment variable holding the endpoint's API key")
    agent.add_argument("--gt", type=Path, help="ground-truth mask on the input grid (for --policy clinician)")
    agent.add_argument("--recheck", type=int, metavar="N", help="let the agent review the propagated mask every N slices")
    agent.add_argument("--save-trajectory", type=Path, metavar="DIR", help="write every turn as JSON and PNG")
    segment.add_argument("--series-uid", help="DICOM series to read when the folder holds several")
    segment.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    segment.add_argument("--montage", type=Path, help="also write a PNG of slices with the mask overlaid")

    evaluation = commands.add_parser("eval", help="score an agent policy on a manifest of cases with ground truth")
    evaluation.add_argument("manifest", type=Path, help="CSV or JSON with image, mask, description [, slice, axis]")
    evaluation.add_argument("-o", "--output-dir", type=Path, required=True)
    evaluation.add_argument("--policy", choices=POLICIES, default="qwen")
    evaluation.add_argument("--agent-model")
    evaluation.add_argument("--endpoint")
    evaluation.add_argument("--api-key-env", default="MEDSAM_AGENT_API_KEY")
    evaluation.add_argument("--tolerance", type=float, default=2.0, help="surface Dice tolerance in mm (pixels for 2D images)")
    evaluation.add_argument("--find-slice", action="store_true", help="volumes without a slice column: let the agent search")
    evaluation.add_argument("--overwrite", action="store_true", help="replace earlier reports in the output folder")
    _add_model_options(evaluation)

    demo = commands.add_parser("demo", help="segment the right kidney of a generated sample CT (no download, CPU)")
    demo.add_argument("-o", "--output-dir", type=Path, default=Path("medsam-agent-demo"))
    demo.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    demo.add_argument("--overwrite", action="store_true", help="replace earlier demo results in the folder")
    return parser


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--segmenter", choices=SEGMENTERS, default=DEFAULT_SEGMENTER)
    parser.add_argument("--checkpoint", help="segmenter weights: a local file, or for medsam2 a Hugging Face reference "
                                             "such as wanglab/MedSAM2 or wanglab/MedSAM2/MedSAM2_CTLesion.pt")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    parser.add_argument("--runtime", choices=RUNTIME_CHOICES, default=DEFAULT_RUNTIME,
                        help="engine for the image encoder on the CPU: auto = OpenVINO in bf16 where the CPU computes "
                             "bf16 natively, else f32; torch = plain PyTorch f32, the reference")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    try:
        if args.command == "segment":
            return run_segment(args)
        if args.command == "eval":
            return run_eval(args)
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(args.output_dir, device=args.device, overwrite=args.overwrite)
    except MedSAMAgentError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0


def run_segment(args: argparse.Namespace) -> int:
    from .anatomy import segment_style
    from .engine import slice_frames
    from .volume import read_volume
    from .writers import check_output_path, output_suffix, write_segmentation

    started = time.perf_counter()
    output_suffix(args.output)
    output = check_output_path(args.output, args.overwrite, protected=[args.input])
    if args.montage:
        check_output_path(args.montage, args.overwrite, protected=[args.input, args.output])
    if args.save_trajectory:
        _check_trajectory_folder(args.save_trajectory, args.overwrite)
    volume = read_volume(args.input, series_uid=args.series_uid, log=_info)
    frames = slice_frames(volume, args.axis, args.window, target=args.target)
    _info(f"{volume.description}: {volume.geometry.size} voxels, {volume.modality}, window {frames.window.name}")
    if args.target:
        result = _segment_with_agent(args, volume, frames)
    else:
        result = _segment_from_prompts(args, volume, frames)
    style = segment_style(args.target or args.name or "Segment", args.name)
    write_segmentation(result.mask, volume, output, style)
    if args.montage:
        from .montage import montage

        montage(frames, result.stack, args.montage)
    _info(f"wrote {output}: {result.summary(volume, seconds=time.perf_counter() - started)}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from .agent.evaluation import evaluate, read_manifest, summarise
    from .agent.policies import create_policy
    from .errors import OutputError
    from .segmenters import create_segmenter

    if (args.output_dir / "cases.csv").exists() and not args.overwrite:
        raise OutputError(f"{args.output_dir} already holds an evaluation; pass --overwrite to replace it")
    read_manifest(args.manifest)  # fail on a bad manifest before loading models
    policy = create_policy(args.policy, model=args.agent_model, device=args.device, url=args.endpoint, api_key_env=args.api_key_env)
    segmenter = create_segmenter(args.segmenter, args.checkpoint, args.device, args.runtime)
    with ProgressBar() as bar:
        results = evaluate(args.manifest, args.output_dir, policy, segmenter, args.tolerance, args.find_slice, progress=bar.update)
    for row in summarise(results):
        print("  ".join(f"{key} {value}" for key, value in row.items()))
    _info(f"wrote {args.output_dir / 'cases.csv'}, summary.csv and summary.md")
    return 0


def _segment_from_prompts(args, volume, frames):
    from .engine import segment
    from .propagation import VolumeRequest
    from .segmenters import create_segmenter

    key_slice, prompts = prompts_from_args(args, volume, frames.plane)
    request = VolumeRequest(
        key_slice=key_slice,
        prompts=prompts,
        slice_range=tuple(args.range) if args.range else None,
        keep_largest_component=not args.all_components,
    )
    _info(f"{args.axis} key slice {key_slice}")
    segmenter = create_segmenter(args.segmenter, args.checkpoint, args.device, args.runtime)
    with ProgressBar() as bar:
        return segment(volume, segmenter, request, frames, progress=bar.update)


def _segment_with_agent(args, volume, frames):
    from .agent.policies import create_policy
    from .agent.volume_agent import AgentRequest, save_trajectories, segment_with_agent
    from .segmenters import create_segmenter

    if args.box or args.box_ras or args.point or args.point_ras:
        raise PromptError("give either --target (the agent places the prompts) or --box/--point, not both")
    if (args.slice is None) == (not args.find_slice):
        raise PromptError("with --target, give the key slice with --slice K, or --find-slice to let the agent find it")
    truth = _ground_truth(args.gt, volume, frames) if args.gt else None
    if args.policy == "clinician" and truth is None:
        raise PromptError("--policy clinician simulates a clinician from the ground truth: give it with --gt MASK")
    request = AgentRequest(
        description=args.target,
        key_slice=None if args.find_slice else frames.plane.check_slice(args.slice),
        recheck_every=args.recheck,
        slice_range=tuple(args.range) if args.range else None,
        keep_largest_component=not args.all_components,
    )
    policy = create_policy(
        args.policy, model=args.agent_model, device=args.device, url=args.endpoint, api_key_env=args.api_key_env
    )
    segmenter = create_segmenter(args.segmenter, args.checkpoint, args.device, args.runtime)
    _info(f"agent: {policy.describe()}; segmenter: {segmenter.name}; target: {args.target!r}")
    with ProgressBar() as bar:
        outcome = segment_with_agent(volume, frames, segmenter, policy, request, truth=truth, progress=bar.update)
    key = outcome.key_trajectory
    _info(f"key slice {outcome.key_slice}: {key.actions} actions, {key.invalid_turns} invalid turns, ended by {key.end_reason}"
          + (f"; {len(outcome.reviews)} slices reviewed, {len(outcome.corrections)} corrected" if args.recheck else ""))
    if args.save_trajectory:
        _info(f"wrote {save_trajectories(outcome, args.save_trajectory)}")
    return outcome.segmentation


def _check_trajectory_folder(folder: Path, overwrite: bool) -> None:
    from .errors import OutputError

    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--save-trajectory {folder} exists and is not a folder")
    if (folder / "trajectory.json").exists() and not overwrite:
        raise OutputError(f"{folder} already holds a trajectory; pass --overwrite to replace it")
    if not folder.parent.exists():
        raise OutputError(f"folder {folder.parent} does not exist")


def _ground_truth(path, volume, frames):
    import numpy as np

    from .volume import read_volume

    truth = read_volume(path, log=lambda _: None)
    same_grid = truth.geometry.size == volume.geometry.size and np.allclose(
        truth.geometry.ijk_to_lps(), volume.geometry.ijk_to_lps(), atol=1e-3
    )
    if not same_grid:
        raise PromptError(f"the ground truth {path} is not on the input's voxel grid (size {truth.geometry.size})")
    return frames.plane.to_display(truth.array > 0)


def prompts_from_args(args, volume, plane):
    """The key slice and display-slice prompts from --slice/--box/--point and their RAS forms."""
    from .prompts import (
        SlicePrompts,
        box_from_index,
        box_from_ras,
        check_prompts,
        point_from_index,
        point_from_ras,
    )

    slices_named = []
    box = None
    if args.box and args.box_ras:
        raise PromptError("give --box or --box-ras, not both")
    if args.box_ras:
        ras_slice, box = box_from_ras(volume.geometry, plane, args.box_ras[:3], args.box_ras[3:])
        slices_named.append(("--box-ras", ras_slice))
    points = []
    for i, j, kind in args.point:
        points.append(point_from_index(plane, _number(i), _number(j), _polarity(kind)))
    for r, a, s, kind in args.point_ras:
        ras_slice, point = point_from_ras(volume.geometry, plane, [_number(r), _number(a), _number(s)], _polarity(kind))
        slices_named.append(("--point-ras", ras_slice))
        points.append(point)
    if args.slice is not None:
        key_slice = plane.check_slice(args.slice)
    elif slices_named:
        key_slice = slices_named[0][1]
    else:
        raise PromptError("give the key slice with --slice K (or prompts in RAS with --box-ras/--point-ras)")
    for option, ras_slice in slices_named:
        if ras_slice != key_slice:
            raise PromptError(f"{option} lies on {plane.view} slice {ras_slice}, not on the key slice {key_slice}")
    if args.box:
        box = box_from_index(plane, *args.box)
    prompts = SlicePrompts(box=box, points=tuple(points))
    return key_slice, check_prompts(prompts, plane.image_shape)


def _polarity(kind: str) -> bool:
    value = kind.strip().lower()
    if value in ("pos", "positive", "+", "1"):
        return True
    if value in ("neg", "negative", "-", "0"):
        return False
    raise PromptError(f"point type must be pos or neg, got {kind!r}")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise PromptError(f"expected a number, got {text!r}") from None


def _info(message: str) -> None:
    print(message, file=sys.stderr)


class ProgressBar:
    """A tqdm bar on stderr fed by the engine's progress callback."""

    def __enter__(self):
        from tqdm import tqdm

        self._bar = tqdm(total=1, unit="slice", file=sys.stderr, leave=False, dynamic_ncols=True)
        return self

    def update(self, step: str, done: int, total: int) -> None:
        if total != self._bar.total or done < self._bar.n:  # a new phase
            self._bar.reset(total=total)
        self._bar.n = done
        self._bar.set_description(step, refresh=False)
        self._bar.refresh()

    def __exit__(self, *exc):
        self._bar.close()
        return False


if __name__ == "__main__":
    raise SystemExit(main())
