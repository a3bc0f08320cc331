"""Which box-propagation rules follow the object best? LiteMedSAM on real anatomy.

For each case the seed is a box around the label on the slice where the label is largest
(grown by 2 pixels), as a user would draw it; propagation then runs without a range, so
its own rules decide where to stop. The reference is LiteMedSAM given the true box on
every labelled slice (what propagation could at best reach with this model). Printed per
case and rule set: 3D Dice against the label, the slices where the segmentation starts
and ends against the label's, and per rule set the mean Dice and its loss against the
reference, averaged over the cases: CT lung tumours and MR brain tumours (expert labels),
CT and MR whole brains, and the liver, spleen and kidneys on an abdominal CT and the
spleen and kidneys on an abdominal MR (TotalSegmentator's labels, made by its model).

    python benchmarks/propagation_quality.py [--cases lung1 lung2 brain1 brain2 ct-head mni ct-liver mr-spleen ...]
                                            [--rules WORDS ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from MedSAMAgentLib.io.volumes import read_volume  # noqa: E402
from MedSAMAgentLib.metrics import dice  # noqa: E402
from MedSAMAgentLib.prompts import Box, SlicePrompts  # noqa: E402
from MedSAMAgentLib.propagation import VolumeRequest, segment_volume  # noqa: E402
from MedSAMAgentLib.segmenters.base import slice_frames  # noqa: E402
from MedSAMAgentLib.segmenters.box_tracking import DEFAULT_RULES, BoxTrackingRules  # noqa: E402
from MedSAMAgentLib.segmenters.litemedsam import LiteMedSAM  # noqa: E402
from MedSAMAgentLib.segmenters.runtimes.hardware import cpu_name  # noqa: E402
from Testing.fixtures.anatomy import LESIONS, labelled_structure, ct_head, lesion, mni_t1  # noqa: E402

BOX_MARGIN = 2
PREVIOUS = BoxTrackingRules("previous: seed grey-level gate")
UNCUT = DEFAULT_RULES.but("seed gate x1.5 + IoU estimate >= 0.7x the seed's, masks uncut", grey_band=0.0, min_overlap=0.0)
RULE_SETS = [
    PREVIOUS,
    PREVIOUS.but("no gate", intensity="off"),
    PREVIOUS.but("neighbour gate", intensity="neighbour"),
    PREVIOUS.but("seed or neighbour gate", intensity="seed or neighbour"),
    PREVIOUS.but("seed gate x1.5", intensity_tolerance=1.5),
    PREVIOUS.but("IoU estimate >= 0.7, no gate", intensity="off", min_score=0.7),
    PREVIOUS.but("seed gate x1.5 + IoU estimate >= 0.6", intensity_tolerance=1.5, min_score=0.6),
    UNCUT,
    UNCUT.but("uncut + masks opened", open_masks=True),
    UNCUT.but("uncut, IoU estimate >= 0.6x the seed's", min_score_of_seed=0.6),
    UNCUT.but("uncut, IoU estimate >= 0.8x the seed's", min_score_of_seed=0.8),
    UNCUT.but("uncut, neighbour gate x1.5", intensity="neighbour"),
    PREVIOUS.but("seed gate, margin 5% (2 px at least)", margin_fraction=0.05, margin_min_pixels=2.0),
    PREVIOUS.but("seed gate + overlap >= 0.5", min_overlap=0.5),
    PREVIOUS.but("seed gate, margin 20%", margin_fraction=0.2),
    PREVIOUS.but("seed gate + centre click", centre_click=True),
    PREVIOUS.but("seed gate + retry with margin 30%", extra_margins=(0.3,)),
    PREVIOUS.but("seed gate + zoom", zoom=True),
    UNCUT.but("uncut, margin 5%", margin_fraction=0.05),
    UNCUT.but("uncut, margin 15%", margin_fraction=0.15),
    *(DEFAULT_RULES.but(f"masks cut to {band} seed spreads", grey_band=band) for band in (1.5, 2.0, 2.5)),
    DEFAULT_RULES,
    DEFAULT_RULES.but("default, gate on the whole mask", band_share=0.0),
    DEFAULT_RULES.but("default, gate on the whole mask, no overlap test", band_share=0.0, min_overlap=0.0),
    DEFAULT_RULES.but("default, overlap >= 0.3", min_overlap=0.3),
    DEFAULT_RULES.but("default, 50% in the band", band_share=0.5),
    DEFAULT_RULES.but("default, gate x2.0", intensity_tolerance=2.0),
    DEFAULT_RULES.but("default, gate x1.25", intensity_tolerance=1.25),
]
ORGANS = ("ct-liver", "ct-spleen", "ct-kidney-right", "ct-kidney-left", "mr-spleen", "mr-kidney-right", "mr-kidney-left")


def load_case(name: str):
    """(frames, truth stack in display orientation) for a lesion or a whole brain."""
    if name == "ct-head":
        path, reference = ct_head()
        window = "brain"
    elif name == "mni":
        path, reference = mni_t1()
        window = None
    elif name.startswith(("ct-", "mr-")):
        modality, organ = name.split("-", 1)
        (path, reference), window = labelled_structure(modality, organ.replace("-", "_")), None
    else:
        (path, reference), window = lesion(name), None
    frames = slice_frames(read_volume(path, log=lambda _: None), "axial", window)
    return frames, frames.plane.to_display(reference)


def extent(stack: np.ndarray) -> tuple[int, int]:
    present = np.flatnonzero(stack.any(axis=(1, 2)))
    return (int(present[0]), int(present[-1])) if len(present) else (-1, -1)


def true_box_reference(segmenter: LiteMedSAM, frames, truth: np.ndarray, zoom: bool) -> np.ndarray:
    result = np.zeros_like(truth)
    for index in np.flatnonzero(truth.any(axis=(1, 2))):
        box = Box.around(truth[index], margin=BOX_MARGIN)
        result[index] = segmenter._predict(frames[index], SlicePrompts(box=box), zoom).mask
    return result


def propagated(segmenter: LiteMedSAM, frames, truth: np.ndarray, rules: BoxTrackingRules) -> np.ndarray:
    key = int(np.argmax(truth.sum(axis=(1, 2))))
    segmenter.rules = rules
    request = VolumeRequest(key, SlicePrompts(box=Box.around(truth[key], margin=BOX_MARGIN)))
    return segment_volume(segmenter, frames, request)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=[*LESIONS, "ct-head", "mni", *ORGANS])
    parser.add_argument("--rules", nargs="+", metavar="WORDS", help="only the rule sets whose names contain one of these")
    args = parser.parse_args()
    rule_sets = [rules for rules in RULE_SETS if not args.rules or any(words in rules.name for words in args.rules)]
    segmenter = LiteMedSAM(device="cpu", cache_size=1024)  # every slice encoded once per case
    print(f"{cpu_name()}; LiteMedSAM on {segmenter.runtime.name} {segmenter.runtime.precision}; default rules: {DEFAULT_RULES.name}")
    scores: dict[str, list[float]] = {rules.name: [] for rules in rule_sets}
    references = []
    for case in args.cases:
        frames, truth = load_case(case)
        segmenter._embeddings.clear()
        started = time.perf_counter()
        reference = dice(true_box_reference(segmenter, frames, truth, zoom=False), truth)
        zoomed = dice(true_box_reference(segmenter, frames, truth, zoom=True), truth)
        references.append(reference)
        first, last = extent(truth)
        print(f"\n{case}: label on slices {first}-{last} of {len(frames)}; true box per slice: Dice {reference:.3f} "
              f"(zoomed {zoomed:.3f})", flush=True)
        for rules in rule_sets:
            result = propagated(segmenter, frames, truth, rules)
            score = dice(result, truth)
            scores[rules.name].append(score)
            start, end = extent(result)
            print(f"  {rules.name:58s} Dice {score:.3f} ({score - reference:+.3f})  slices {start}-{end} "
                  f"(ends {start - first:+d}/{end - last:+d})", flush=True)
        print(f"  ({time.perf_counter() - started:.0f} s)")
    print(f"\nmean over {len(args.cases)} cases; true box per slice {np.mean(references):.3f}")
    for name, values in scores.items():
        print(f"  {name:58s} Dice {np.mean(values):.3f}  loss against the reference {np.mean(references) - np.mean(values):.3f}")


if __name__ == "__main__":
    main()
