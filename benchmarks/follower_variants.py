"""Ways of following an object, measured inside each label's own slice range (so no end is
decided): `TrackingRules` numbers set on the command line, each case seeded from the tight,
5 px and shifted boxes, against the oracle (LiteMedSAM given the label's box on every slice).
The benchmark is summed up whole and by its two folds; the check set apart.

    python benchmarks/follower_variants.py --encodings ~/enc --vary margin_fraction=0.05,0.15 --out runs.jsonl

One JSON line per case goes to `--out` as it is measured (a rerun with the same variants
resumes there); the shipped rules are always measured beside the variants.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cases import BENCHMARK, CHECK, folds, load_case  # noqa: E402
from benchmarks.encodings import store_encodings  # noqa: E402
from benchmarks.propagation_quality import oracle  # noqa: E402
from benchmarks.tracks import drawn_box  # noqa: E402
from MedSAMAgentLib.metrics import dice  # noqa: E402
from MedSAMAgentLib.prompts import SlicePrompts  # noqa: E402
from MedSAMAgentLib.propagation import VolumeRequest, segment_volume  # noqa: E402
from MedSAMAgentLib.segmenters.box_tracking import DEFAULT_RULES, TrackingRules  # noqa: E402

BOXES = ("tight", "5 px", "shifted")
SHIPPED = "shipped"
LOSS_TOLERANCE = 0.05  # the bound on a case's loss against the oracle inside its range


def variants(settings: list[str]) -> dict[str, TrackingRules]:
    """`FIELD=V1,V2` -> one set of rules per value, the shipped rules first."""
    numbers = {field.name for field in dataclasses.fields(TrackingRules) if field.type in ("float", "int")}
    chosen = {SHIPPED: DEFAULT_RULES}
    for setting in settings:
        name, _, values = setting.partition("=")
        if name not in numbers or not values:
            raise SystemExit(f"--vary takes FIELD=V1,V2 with FIELD one of {', '.join(sorted(numbers))}; got {setting!r}")
        kind = type(getattr(DEFAULT_RULES, name))
        for value in values.split(","):
            chosen[f"{name}={value}"] = dataclasses.replace(DEFAULT_RULES, **{name: kind(value)})
    return chosen


def measure(segmenter, name: str, rules: dict[str, TrackingRules]) -> dict:
    case = load_case(name)
    key = case.largest_slice
    row = {"case": name, "oracle": dice(oracle(segmenter, case), case.truth)}
    for variant, chosen in rules.items():
        segmenter.rules = chosen
        for how in BOXES:
            request = VolumeRequest(key, SlicePrompts(box=drawn_box(case.truth[key], how)), slice_range=case.extent)
            row[f"{variant}|{how}"] = dice(segment_volume(segmenter, case.frames, request), case.truth)
    segmenter.rules = DEFAULT_RULES
    return row


def summary(rows: dict[str, dict], names: list[str]) -> None:
    fold_a, fold_b = folds(BENCHMARK)
    groups = {"benchmark": BENCHMARK, "fold A": fold_a, "fold B": fold_b, "check": CHECK}
    for group, members in groups.items():
        chosen = [rows[name] for name in members if name in rows]
        if not chosen:
            continue
        cells = [f"{group} ({len(chosen)}), oracle {np.mean([row['oracle'] for row in chosen]):.3f}"]
        for variant in names:
            dices = np.array([[row[f"{variant}|{how}"] for how in BOXES] for row in chosen])
            losing = sum((row["oracle"] - dices[index] > LOSS_TOLERANCE).any() for index, row in enumerate(chosen))
            cells.append(f"{variant} {dices.mean():.3f} (spread {np.mean(dices.max(1) - dices.min(1)):.3f}, "
                         f"{losing} lose > {LOSS_TOLERANCE})")
        print(" | ".join(cells))
    print("cases whose mean over the boxes moves by more than 0.02 from the shipped rules:")
    for name, row in rows.items():
        means = {variant: np.mean([row[f"{variant}|{how}"] for how in BOXES]) for variant in names}
        if max(abs(value - means[SHIPPED]) for value in means.values()) > 0.02:
            print(f"  {name:32s} " + " ".join(f"{variant} {value:.3f}" for variant, value in means.items()))


def main() -> None:
    from MedSAMAgentLib.segmenters.litemedsam import LiteMedSAM
    from MedSAMAgentLib.segmenters.runtimes.hardware import cpu_name

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vary", action="append", default=[], help="FIELD=V1,V2: a TrackingRules number and its values")
    parser.add_argument("--cases", nargs="+", help="these cases only (names as in cases.py)")
    parser.add_argument("--out", type=Path, required=True, help="one JSON line per case; resumed")
    parser.add_argument("--encodings", type=Path, help="keep the image encodings here between runs")
    args = parser.parse_args()
    rules = variants(args.vary)
    rows = {}
    if args.out.is_file():
        rows = {row["case"]: row for row in map(json.loads, args.out.read_text().splitlines()) if all(f"{v}|tight" in row for v in rules)}
    segmenter = LiteMedSAM(device="cpu", cache_size=512)
    if args.encodings:
        store_encodings(segmenter, args.encodings)
    print(f"{cpu_name()}; LiteMedSAM on {segmenter.runtime.name} {segmenter.runtime.precision}", flush=True)
    for name in args.cases or (*BENCHMARK, *CHECK):
        if name in rows:
            continue
        started = time.perf_counter()
        rows[name] = measure(segmenter, name, rules)
        with args.out.open("a") as out:
            out.write(json.dumps(rows[name]) + "\n")
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    summary(rows, list(rules))


if __name__ == "__main__":
    main()
