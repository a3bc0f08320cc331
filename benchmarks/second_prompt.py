"""A second box where the first run went wrong, as a radiologist would add one: how much it
recovers, and what it changes elsewhere.

For each case (`cases.py`: both sets by default), through the shipped code path:

- the tight box on the label's largest slice, propagated without a range;
- a second tight box on the label slice that run followed worst (lowest Dice among label
  slices of at least `MIN_LABEL_PIXELS`; of equal Dice to 0.01, the nearer to the first
  box), both boxes in one request;
- the second box given as an update of the first result (the first box's slice settled, its
  mask kept), as the Slicer module and the server send it.

Per case: 3D Dice before and after, the Dice on the slice boxed and over the stretch
between the two boxes, the ends against the label's, and the update's 3D Dice; then the
means (by fold too), the cases the second box made worse or better by more than 0.02, and
those where the update differs from the one request. A second box the model finds nothing
for is reported with the error the user would see.

    python benchmarks/second_prompt.py [--set benchmark|check|both] [--cases NAME ...] [--encodings DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cases import BENCHMARK, CHECK, Case, folds, load_case  # noqa: E402
from benchmarks.encodings import store_encodings  # noqa: E402
from benchmarks.propagation_quality import ends_against, extent, propagated  # noqa: E402
from benchmarks.tracks import drawn_box  # noqa: E402
from MedSAMAgentLib.errors import MedSAMAgentError  # noqa: E402
from MedSAMAgentLib.metrics import dice  # noqa: E402
from MedSAMAgentLib.prompts import SlicePrompts  # noqa: E402
from MedSAMAgentLib.propagation import VolumeRequest, segment_volume  # noqa: E402

MIN_LABEL_PIXELS = 20  # a slice the label barely touches is not where a user draws a box
CHANGE = 0.02  # Dice: a case made worse or better by more than this is listed


def worst_followed(case: Case, stack: np.ndarray) -> int | None:
    key = case.largest_slice
    first, last = case.extent
    scored = {index: round(dice(stack[index], case.truth[index]), 2) for index in range(first, last + 1)
              if index != key and case.truth[index].sum() >= MIN_LABEL_PIXELS}
    return min(scored, key=lambda index: (scored[index], abs(index - key))) if scored else None


def measure(segmenter, case: Case) -> dict:
    key = case.largest_slice
    tight = SlicePrompts(box=drawn_box(case.truth[key], "tight"))
    before = propagated(segmenter, case, "tight")
    row = {"before": dice(before, case.truth), "before ends": extent(before)}
    second = worst_followed(case, before)
    if second is None:
        return row
    boxed = SlicePrompts(box=drawn_box(case.truth[second], "tight"))
    row.update({"second": second, "boxed before": dice(before[second], case.truth[second])})
    try:
        after = segment_volume(segmenter, case.frames, VolumeRequest(key, tight, prompts_at={second: boxed}))
        update = segment_volume(segmenter, case.frames, VolumeRequest(second, boxed, previous=before, settled=(key,)))
    except MedSAMAgentError as error:
        return {**row, "error": str(error)}
    low, high = sorted((key, second))
    return {**row, "after": dice(after, case.truth), "after ends": extent(after),
            "boxed after": dice(after[second], case.truth[second]),
            "between": dice(after[low:high + 1], case.truth[low:high + 1]),
            "update": dice(update, case.truth), "update matches": bool(np.array_equal(update, after))}


def summary(rows: dict[str, dict]) -> None:
    fold_a, fold_b = folds(BENCHMARK)
    for group, members in {"benchmark": BENCHMARK, "fold A": fold_a, "fold B": fold_b, "check": CHECK}.items():
        chosen = [rows[name] for name in members if name in rows and "after" in rows[name]]
        if not chosen:
            continue

        def mean(key: str) -> float:
            return float(np.mean([row[key] for row in chosen]))

        def count(changed) -> int:
            return sum(bool(changed(row)) for row in chosen)

        print(f"{group} ({len(chosen)} cases): 3D Dice {mean('before'):.3f} -> {mean('after'):.3f}; "
              f"the slice boxed {mean('boxed before'):.3f} -> {mean('boxed after'):.3f}; between the boxes {mean('between'):.3f}; "
              f"better by > {CHANGE} in {count(lambda row: row['after'] > row['before'] + CHANGE)}, "
              f"worse in {count(lambda row: row['after'] < row['before'] - CHANGE)}; as an update {mean('update'):.3f}, "
              f"off the one request by > {CHANGE} in {count(lambda row: abs(row['update'] - row['after']) > CHANGE)}")
    failed = [name for name, row in rows.items() if "error" in row]
    mismatched = [name for name, row in rows.items() if row.get("update matches") is False]
    print(f"second box found nothing: {', '.join(failed) or 'none'}; "
          f"the update not voxel for voxel the one request: {', '.join(mismatched) or 'none'}")


def main() -> None:
    from MedSAMAgentLib.segmenters.litemedsam import LiteMedSAM
    from MedSAMAgentLib.segmenters.runtimes.hardware import cpu_name

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("benchmark", "check", "both"), default="both")
    parser.add_argument("--cases", nargs="+", help="these cases only (names as in cases.py)")
    parser.add_argument("--encodings", type=Path, help="keep the image encodings here between runs")
    args = parser.parse_args()
    names = args.cases or {"benchmark": BENCHMARK, "check": CHECK, "both": BENCHMARK + CHECK}[args.set]
    segmenter = LiteMedSAM(device="cpu", cache_size=512)
    if args.encodings:
        store_encodings(segmenter, args.encodings)
    print(f"{cpu_name()}; LiteMedSAM on {segmenter.runtime.name} {segmenter.runtime.precision}")
    print(f"{'case':32s} {'label':>7s} {'before':>14s} second {'slice boxed':>11s} {'after':>14s} between update")
    rows = {}
    for name in names:
        case = load_case(name)
        row = rows[name] = measure(segmenter, case)
        first, last = case.extent
        cells = f"{row['before']:.3f}({ends_against(row['before ends'], case)})"
        if "second" in row:
            cells = f"{cells:>14s} {row['second']:6d} {row['boxed before']:.2f}->"
            if "error" in row:
                cells += f"  error: {row['error']}"
            else:
                cells += (f"{row['boxed after']:.2f} {row['after']:.3f}({ends_against(row['after ends'], case)}) "
                          f"{row['between']:.3f} {row['update']:.3f}")
        print(f"{name:32s} {first:3d}-{last:<3d} {cells}", flush=True)
    summary(rows)


if __name__ == "__main__":
    main()
