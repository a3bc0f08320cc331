"""How well does propagation follow real anatomy, whatever box is drawn?

LiteMedSAM (the embedded default) unless `--segmenter medsam2 --checkpoint FILE` (MedSAM2's
video propagation, its object score ending the object; on a GPU with `--device cuda`). For
each case (`cases.py`: the benchmark's, or the structures it never shows with `--set
check`), through the shipped code path (`segment_volume`, default rules):

- the oracle: the same model given the label's tight box on every labelled slice (MedSAM2
  in its own 512 px configuration);
- the seed box on the label's largest slice drawn five ways (tight, 2, 5 and 10 px
  outside, 3 px outside and shifted by 10%), propagated without a range: 3D Dice, and the
  first and last slices against the label's;
- the tight box with the label's own slice range (the 3D box).

Then the means, each box's loss against the oracle, how many ends miss by more than 2
slices, and how far the Dice moves with the box. A run the model finds nothing for counts
as an empty result, marked "failed". Held-out figures for LiteMedSAM's evidence weights
come from `evidence_fit.py`. The processor, device and runtime are printed first.

    python benchmarks/propagation_quality.py [--set benchmark|check] [--cases NAME ...]
        [--segmenter litemedsam|medsam2] [--checkpoint FILE] [--device cpu|cuda|...]
        [--runtime auto|torch|openvino] [--encodings DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cases import BENCHMARK, CHECK, Case, load_case  # noqa: E402
from benchmarks.encodings import store_encodings  # noqa: E402
from benchmarks.tracks import BOXES, drawn_box  # noqa: E402
from MedSAMAgentLib.errors import MedSAMAgentError  # noqa: E402
from MedSAMAgentLib.metrics import dice  # noqa: E402
from MedSAMAgentLib.prompts import Box, SlicePrompts  # noqa: E402
from MedSAMAgentLib.propagation import VolumeRequest, segment_volume  # noqa: E402
from MedSAMAgentLib.segmenters import Segmenter, create_segmenter  # noqa: E402
from MedSAMAgentLib.segmenters.litemedsam import LiteMedSAM  # noqa: E402
from MedSAMAgentLib.segmenters.runtimes.hardware import cpu_name  # noqa: E402

END_TOLERANCE = 2  # slices
BOX_TOLERANCE = 0.05  # Dice


def oracle(segmenter: Segmenter, case: Case) -> np.ndarray:
    result = np.zeros_like(case.truth)
    for index in np.flatnonzero(case.truth.any(axis=(1, 2))):
        result[index] = segmenter.predict_slice(case.frames[index], SlicePrompts(box=Box.around(case.truth[index]))).mask
    return result


def propagated(segmenter: Segmenter, case: Case, how: str, slice_range=None) -> np.ndarray:
    key = case.largest_slice
    request = VolumeRequest(key, SlicePrompts(box=drawn_box(case.truth[key], how)), slice_range=slice_range)
    return segment_volume(segmenter, case.frames, request)


def extent(stack: np.ndarray) -> tuple[int, int] | None:
    present = np.flatnonzero(stack.any(axis=(1, 2)))
    return (int(present[0]), int(present[-1])) if len(present) else None


def ends_against(found: tuple[int, int] | None, case: Case) -> str:
    """A result's first and last slices against the label's ("+0/-1"), or "empty"."""
    first, last = case.extent
    return "empty" if found is None else f"{found[0] - first:+d}/{found[1] - last:+d}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("benchmark", "check"), default="benchmark")
    parser.add_argument("--cases", nargs="+", help="these cases only (names as in cases.py)")
    parser.add_argument("--segmenter", choices=("litemedsam", "medsam2"), default="litemedsam")
    parser.add_argument("--checkpoint", help="the model's weights (LiteMedSAM's default: the installed ones)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--encodings", type=Path, help="keep LiteMedSAM's image encodings here between runs")
    args = parser.parse_args()
    if args.encodings and args.segmenter != "litemedsam":
        parser.error("--encodings keeps LiteMedSAM's encodings only")
    names = args.cases or (BENCHMARK if args.set == "benchmark" else CHECK)
    if args.segmenter == "litemedsam":
        segmenter = LiteMedSAM(checkpoint=args.checkpoint, device=args.device, runtime=args.runtime, cache_size=512)
    else:  # the oracle in the configuration propagation runs in
        segmenter = create_segmenter("medsam2", args.checkpoint, args.device, args.runtime, medsam2_turn_size=512)
    if args.encodings:
        store_encodings(segmenter, args.encodings)
    print(f"{cpu_name()}; {segmenter.name} on {segmenter.device}, {segmenter.runtime.name} {segmenter.runtime.precision}")
    columns = (*BOXES, "true range")
    print(f"{'case':32s} {'label':>7s} {'oracle':>6s} " + " ".join(f"{c:>15s}" for c in columns))
    results: dict[str, dict[str, float]] = {}
    ends_missed = dict.fromkeys(BOXES, 0)
    box_moves = []
    for name in names:
        started = time.perf_counter()
        case = load_case(name)
        first, last = case.extent
        row = {"oracle": dice(oracle(segmenter, case), case.truth)}
        cells = []
        for how in columns:
            try:
                stack = propagated(segmenter, case, "tight", case.extent) if how == "true range" else propagated(segmenter, case, how)
                failed = False
            except MedSAMAgentError:  # the user gets no result
                stack, failed = np.zeros_like(case.truth), True
            row[how] = dice(stack, case.truth)
            ends = extent(stack)
            cells.append(f"{row[how]:.3f}({'failed' if failed else ends_against(ends, case)})")
            if ends is None:
                ends = (-10**6, -10**6)
            if how in ends_missed and max(abs(ends[0] - first), abs(ends[1] - last)) > END_TOLERANCE:
                ends_missed[how] += 1
        box_moves.append(max(row[how] for how in BOXES) - min(row[how] for how in BOXES))
        results[name] = row
        print(f"{name:32s} {first:3d}-{last:<3d} {row['oracle']:6.3f} " + " ".join(f"{c:>15s}" for c in cells)
              + f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    reference = np.mean([row["oracle"] for row in results.values()])
    print(f"\nmean over {len(results)} cases: oracle {reference:.3f}")
    for how in columns:
        mean = np.mean([row[how] for row in results.values()])
        missed = f"; ends off by more than {END_TOLERANCE} slices in {ends_missed[how]} cases" if how in ends_missed else ""
        print(f"  {how:10s} Dice {mean:.3f}, loss against the oracle {reference - mean:.3f}{missed}")
    print(f"  Dice moves with the box by {np.mean(box_moves):.3f} on average, by more than {BOX_TOLERANCE} in "
          f"{sum(move > BOX_TOLERANCE for move in box_moves)} of {len(box_moves)} cases (most {max(box_moves):.3f})")


if __name__ == "__main__":
    main()
