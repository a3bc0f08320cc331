"""The `medsam-agent` command: segment a volume from prompts, or run the demo.

Every user error ends with one line on stderr starting with 'error:' and exit status 2;
nothing is written unless the whole run succeeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import MedSAMAgentError, PromptError
from .segmenters import DEFAULT_SEGMENTER, SEGMENTERS
from .segmenters.devices import DEVICE_CHOICES
from .orientation import VIEWS

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
    segment.add_argument("--series-uid", help="DICOM series to read when the folder holds several")
    segment.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    segment.add_argument("--montage", type=Path, help="also write a PNG of slices with the mask overlaid")

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "segment":
            return run_segment(args)
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
    from .engine import segment, slice_frames
    from .propagation import VolumeRequest
    from .segmenters import create_segmenter
    from .volume import read_volume
    from .writers import check_output_path, output_suffix, write_segmentation

    output_suffix(args.output)
    output = check_output_path(args.output, args.overwrite, protected=[args.input])
    if args.montage:
        check_output_path(args.montage, args.overwrite, protected=[args.input, args.output])
    volume = read_volume(args.input, series_uid=args.series_uid, log=_info)
    frames = slice_frames(volume, args.axis, args.window)
    key_slice, prompts = prompts_from_args(args, volume, frames.plane)
    request = VolumeRequest(
        key_slice=key_slice,
        prompts=prompts,
        slice_range=tuple(args.range) if args.range else None,
        keep_largest_component=not args.all_components,
    )
    _info(f"{volume.description}: {volume.geometry.size} voxels, {volume.modality}, window {frames.window.name}; "
          f"{args.axis} key slice {key_slice}")
    segmenter = create_segmenter(args.segmenter, args.checkpoint, args.device)
    with ProgressBar() as bar:
        result = segment(volume, segmenter, request, frames, progress=bar.update)
    write_segmentation(result.mask, volume, output, segment_style(args.name or "Segment", args.name))
    if args.montage:
        from .montage import montage

        montage(frames, result.stack, args.montage)
    _info(f"wrote {output}: {result.summary(volume)}")
    return 0


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
        self._bar.total = total
        self._bar.n = done
        self._bar.set_description(step, refresh=False)
        self._bar.refresh()

    def __exit__(self, *exc):
        self._bar.close()
        return False


if __name__ == "__main__":
    raise SystemExit(main())
