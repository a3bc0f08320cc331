"""Followed tracks of the benchmark's cases, and what any end decision makes of them.

LiteMedSAM's follower keeps every mask; only where the object ends depends on the
evidence weights. So each case is followed once per box (from the label's largest slice,
both ways, `PAST` slices beyond the label's ends), each slice's evidence and overlap with
the label kept, and any weights can then be scored by replaying the end decision on those
tracks, without running the model again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from benchmarks.cases import Case
from MedSAMAgentLib.prompts import Box, SlicePrompts
from MedSAMAgentLib.segmenters.base import Seed
from MedSAMAgentLib.segmenters.box_tracking import EndFinder, EvidenceWeights, SliceEvidence

PAST = 16  # slices followed beyond each end of the label
BOXES = ("tight", "2 px", "5 px", "10 px", "shifted")


def drawn_box(label: np.ndarray, how: str) -> Box:
    """A box around a label slice as a user might draw it: tight, 2, 5 or 10 px outside,
    or 3 px outside and moved right and down by 10% of the label's size."""
    if how == "shifted":
        tight, box = Box.around(label), Box.around(label, margin=3.0)
        height, width = label.shape
        dx, dy = max(1.0, 0.1 * (tight.x1 - tight.x0)), max(1.0, 0.1 * (tight.y1 - tight.y0))
        return Box(min(box.x0 + dx, width - 2.0), min(box.y0 + dy, height - 2.0), min(box.x1 + dx, width - 1.0), min(box.y1 + dy, height - 1.0))
    return Box.around(label, margin=0.0 if how == "tight" else float(how.split()[0]))


@dataclass
class TrackedSlice:
    index: int
    evidence: SliceEvidence | None
    area: int
    overlap: int  # pixels shared with the label
    label_area: int


@dataclass
class Track:
    """One box's seed and both directions, slices in order away from the seed."""

    case: str
    box: str
    seed: TrackedSlice
    up: list[TrackedSlice]
    down: list[TrackedSlice]
    extent: tuple[int, int]
    label_voxels: int


def follow_boxes(segmenter, case: Case) -> dict[str, Track]:
    """The case followed from each of `BOXES`; boxes that give the same seed mask share
    one track."""
    key = case.largest_slice
    tracks, by_seed = {}, {}
    for how in BOXES:
        seed = segmenter.seed_prediction(case.frames[key], SlicePrompts(box=drawn_box(case.truth[key], how))).mask.tobytes()
        if seed not in by_seed:
            by_seed[seed] = follow_case(segmenter, case, how)
        tracks[how] = dataclasses.replace(by_seed[seed], box=how)
    return tracks


def follow_case(segmenter, case: Case, how: str) -> Track:
    key = case.largest_slice
    first, last = case.extent
    seed = Seed(key, prompts=SlicePrompts(box=drawn_box(case.truth[key], how)))
    directions = {}
    seed_slice = None
    for name, stop in (("up", min(last + PAST, len(case.frames) - 1)), ("down", max(first - PAST, 0))):
        rows = []
        for index, mask, evidence in segmenter.follow(case.frames, seed, {}, stop):
            label = case.truth[index]
            row = TrackedSlice(index, evidence, int(mask.sum()), int((mask & label).sum()), int(label.sum()))
            if index == key:
                seed_slice = row
            else:
                rows.append(row)
        directions[name] = rows
    return Track(case.name, how, seed_slice, directions["up"], directions["down"], case.extent, int(case.truth.sum()))


def decided(track_rows: list[TrackedSlice], rules, weights: EvidenceWeights) -> int:
    """How many slices beyond the seed the end decision keeps, replayed on a track."""
    ends = EndFinder(rules)
    for row in track_rows:
        end = ends.add(row.evidence.log_odds(weights))
        if end is not None:
            return end
    return ends.peak_at


@dataclass
class Outcome:
    dice: float
    start: int
    end: int


def outcome(track: Track, rules, weights: EvidenceWeights | None) -> Outcome:
    """3D Dice and ends of the track as the end decision with `weights` cuts it; None:
    the label's own range (every slice inside it kept, none outside)."""
    first, last = track.extent
    kept = [track.seed]
    for rows in (track.up, track.down):
        if weights is None:
            kept += [row for row in rows if first <= row.index <= last]
        else:
            kept += rows[: decided(rows, rules, weights)]
    kept = [row for row in kept if row.area]
    shared = sum(row.overlap for row in kept)
    volume = sum(row.area for row in kept)
    indices = [row.index for row in kept] or [-1]
    return Outcome(2 * shared / (volume + track.label_voxels), min(indices), max(indices))
