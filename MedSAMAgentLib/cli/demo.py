"""`medsam-agent demo`: the whole flow on a generated abdominal CT, with the embedded
LiteMedSAM, on CPU, with no download.

A box is placed around the right kidney on its middle slice (as a user would draw it),
LiteMedSAM segments that slice and follows the kidney through the volume; the sample
volume, the segmentation (.seg.nrrd, opens in Slicer over the sample) and a PNG montage
are written, and the result is scored against the phantom's exact kidney.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import OutputError
from .options import add_device_option
from .progress_bar import ProgressBar

BOX_MARGIN_PIXELS = 4


def add_parser(commands) -> None:
    demo = commands.add_parser("demo", help="segment the right kidney of a generated sample CT (no download, CPU)")
    demo.add_argument("-o", "--output-dir", type=Path, default=Path("medsam-agent-demo"))
    add_device_option(demo)
    demo.add_argument("--overwrite", action="store_true", help="replace earlier demo results in the folder")


def run(args) -> int:
    return run_demo(args.output_dir, device=args.device, runtime=args.runtime, overwrite=args.overwrite)


def run_demo(output_dir: Path, device: str = "auto", runtime: str = "auto", overwrite: bool = False) -> int:
    from ..anatomy import segment_style
    from ..engine.interface import SegmentationRequest
    from ..engine.local import LocalEngine
    from ..io.writers import check_output_path, write_segmentation, write_volume
    from ..metrics import dice
    from ..montage import montage
    from ..phantom import DEMO_TARGET, abdominal_phantom
    from ..prompts import Box, SlicePrompts
    from ..segmenters.base import slice_frames

    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(f"{output_dir} exists and is not a folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "volume": output_dir / "sample_abdomen_ct.nrrd",
        "segmentation": output_dir / "right_kidney.seg.nrrd",
        "montage": output_dir / "right_kidney_montage.png",
    }
    for path in paths.values():
        check_output_path(path, overwrite, protected=[])

    volume, truth = abdominal_phantom()
    frames = slice_frames(volume, "axial")
    truth_stack = frames.plane.to_display(truth[DEMO_TARGET])
    present = np.flatnonzero(truth_stack.any(axis=(1, 2)))
    key_slice = int(present[len(present) // 2])
    box = Box.around(truth_stack[key_slice], margin=BOX_MARGIN_PIXELS)
    print(f"sample CT {volume.geometry.size} voxels at {volume.geometry.spacing} mm; target: {DEMO_TARGET}; "
          f"box {box.as_list()} on axial slice {key_slice}", file=sys.stderr)

    engine = LocalEngine("litemedsam", device=device, runtime=runtime)
    request = SegmentationRequest(volume, view="axial", key_slice=key_slice, prompts=SlicePrompts(box=box))
    with ProgressBar() as bar:
        outcome = engine.run(request, progress=bar.update)

    write_volume(volume, paths["volume"])
    write_segmentation(outcome.mask, volume, paths["segmentation"], segment_style(DEMO_TARGET))
    montage(frames, frames.plane.to_display(outcome.mask), paths["montage"])
    score = dice(outcome.mask, truth[DEMO_TARGET])
    for path in paths.values():
        print(f"wrote {path}")
    print(f"{DEMO_TARGET}: {outcome.summary(volume.geometry)}; Dice against the phantom's truth {score:.3f}")
    return 0
