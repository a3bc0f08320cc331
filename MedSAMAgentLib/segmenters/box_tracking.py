"""How a box-prompted model follows an object from slice to slice, and where it ends.

A box always gets a mask from a box-prompted model, even past the end of the object, so
following and ending are separate decisions:

- **The seed does not hang on how the box was drawn**: the seed slice is prompted with
  the user's box scaled up and down, and the mask the model is surest of is the seed.
- **Following**: each slice is prompted with its neighbour's kept mask's box, grown by a
  margin; the mask is kept cut to the seed's grey band (a spill into darker or brighter
  tissue does not carry into the next box). Inside a stretch where the object is known to
  go on (the user's range, or up to another seed) every mask is kept.
- **Evidence**: each slice's mask gets a log-odds that it is still the seed's object, from
  measurements that compare it with the seed and its neighbour (`SliceEvidence`), weighed
  by `EvidenceWeights`.
- **The end is decided over the track** (`EndFinder`): the object ends where the summed
  evidence peaks, found by following a few slices past it until the sum has fallen far
  enough. One slice's evidence near zero moves the sum little, so no single measurement
  near a threshold decides where the object ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..prompts import Box

INTENSITY_TOLERANCE_MIN = 10.0  # grey levels


@dataclass(frozen=True)
class EvidenceWeights:
    """A logistic model of "this slice's mask is the seed's object": log-odds = intercept
    + the weighted measurements of `SliceEvidence`."""

    intercept: float
    score_ratio: float
    grey_distance: float
    band_share: float
    overlap: float
    empty: float
    """Log-odds of a slice where the model found nothing."""


# Fitted by `benchmarks/evidence_fit.py` on the benchmark's 33 cases, five boxes each
# (LiteMedSAM's encoder in OpenVINO bf16). The model's surer masks (score ratio) and masks
# lying in the neighbour's (overlap) speak for the object; a mean grey level away from the
# seed's against it (band share, which moves with the grey level, takes a little back).
# Held out by two folds, the weights fitted on one half gave the other half the same Dice
# within 0.01 as weights fitted on all; figures in benchmarks/README.md.
DEFAULT_EVIDENCE = EvidenceWeights(intercept=0.15, score_ratio=1.1, grey_distance=-0.6, band_share=-0.56, overlap=1.63, empty=-0.62)


@dataclass(frozen=True)
class TrackingRules:
    margin_fraction: float = 0.1
    """The next box is the neighbour's mask's box grown by this fraction of its longer side..."""
    margin_min_pixels: float = 3.0
    """...and by at least this many pixels."""
    grey_band: float = 2.25
    """Each kept mask keeps only its pixels within this many seed spreads of the seed's mean
    grey level (holes filled); 0 keeps masks whole."""
    seed_scales: tuple[float, ...] = (1.2, 1.0, 0.8, 0.6)
    """The seed slice is prompted with the user's box scaled about its centre by each of
    these, and the mask the model is surest of (highest IoU estimate) is the seed: a box
    drawn loose or tight then gives much the same seed."""
    evidence: EvidenceWeights = DEFAULT_EVIDENCE
    end_drop: float = 2.0
    """The end is decided once the summed evidence has fallen this far below its peak..."""
    end_lookahead: int = 4
    """...or this many slices have been followed past the peak."""

    def seed_boxes(self, box: Box, image_shape: tuple[int, int]) -> list[Box]:
        """The user's box scaled about its centre by each of `seed_scales`, inside the slice."""
        height, width = image_shape
        centre_x, centre_y = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
        boxes = []
        for scale in self.seed_scales:
            half_x, half_y = max(1.0, (box.x1 - box.x0) / 2 * scale), max(1.0, (box.y1 - box.y0) / 2 * scale)
            boxes.append(Box(max(0.0, centre_x - half_x), max(0.0, centre_y - half_y), min(width - 1.0, centre_x + half_x),
                             min(height - 1.0, centre_y + half_y)))
        return boxes

    def box_around(self, mask: np.ndarray) -> Box:
        """`mask`'s box grown by `margin_fraction` of its longer side, and by at least
        `margin_min_pixels`."""
        tight = Box.around(mask)
        side = max(tight.x1 - tight.x0, tight.y1 - tight.y0)
        return Box.around(mask, margin=max(self.margin_min_pixels, self.margin_fraction * side))


@dataclass(frozen=True)
class SliceEvidence:
    """What is measured of one slice's mask (the model's raw mask, before the cut)."""

    score_ratio: float
    """log of the model's IoU estimate over the seed mask's."""
    grey_distance: float
    """|mean grey - seed mean| in seed spreads."""
    band_share: float
    """Share of the mask's pixels in the seed's grey band (`TrackingRules.grey_band`)."""
    overlap: float
    """Share of the mask inside the neighbour's kept mask."""
    found: bool = True
    """False when the model found nothing (the other fields are then 0)."""

    def log_odds(self, weights: EvidenceWeights) -> float:
        if not self.found:
            return weights.empty
        return (
            weights.intercept
            + weights.score_ratio * self.score_ratio
            + weights.grey_distance * self.grey_distance
            + weights.band_share * self.band_share
            + weights.overlap * self.overlap
        )


class GreyLevel:
    """Mean grey value of a mask and its tolerance (the mask's own spread, at least
    `INTENSITY_TOLERANCE_MIN`)."""

    def __init__(self, image: np.ndarray, mask: np.ndarray):
        grey = image[..., 0][mask].astype(np.float64)
        self.mean = float(grey.mean())
        self.tolerance = max(float(grey.std()), INTENSITY_TOLERANCE_MIN)

    def near(self, grey, spreads: float):
        """Whether `grey` (a value or an array of them) lies within `spreads` tolerances of
        the mean."""
        return np.abs(grey - self.mean) <= spreads * self.tolerance

    def distance(self, grey: float) -> float:
        return abs(grey - self.mean) / self.tolerance


class ObjectFollower:
    """One direction of tracking: the seed's grey level and IoU estimate, the neighbour's
    kept mask, and what each new mask is measured against."""

    def __init__(self, rules: TrackingRules, seed_image: np.ndarray, seed_mask: np.ndarray, seed_score: float):
        self.rules = rules
        self.seed_grey = GreyLevel(seed_image, seed_mask)
        self.seed_score = max(seed_score, 1e-3)
        self.guide = seed_mask

    def next_box(self) -> Box:
        return self.rules.box_around(self.guide)

    def measure(self, image: np.ndarray, mask: np.ndarray, score: float) -> SliceEvidence:
        """The evidence of a mask (compared with the current neighbour)."""
        if not mask.any():
            return SliceEvidence(0.0, 0.0, 0.0, 0.0, found=False)
        grey = image[..., 0][mask].astype(np.float64)
        return SliceEvidence(
            score_ratio=math.log(max(score, 1e-3) / self.seed_score),
            grey_distance=self.seed_grey.distance(float(grey.mean())),
            band_share=float(self.seed_grey.near(grey, self.rules.grey_band).mean()),
            overlap=float((mask & self.guide).sum() / mask.sum()),
        )

    def kept(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """A mask as it is kept: cut to the seed's grey band with its holes filled (whole
        when the cut would leave nothing)."""
        if self.rules.grey_band <= 0 or not mask.any():
            return mask
        in_band = np.zeros_like(mask)
        in_band[mask] = self.seed_grey.near(image[..., 0][mask].astype(np.float64), self.rules.grey_band)
        if not in_band.any():
            return mask
        # Only the band part's bounding box is filled: outside it all is background.
        (window,) = ndimage.find_objects(in_band.astype(np.uint8))
        in_band[window] = ndimage.binary_fill_holes(in_band[window])
        return in_band

    def follow(self, mask: np.ndarray) -> None:
        """`mask` is the object on the newest slice: the next box is formed from it."""
        if mask.any():
            self.guide = mask


class EndFinder:
    """Where the object ends along one direction: after the slice where the summed evidence
    peaks. Slices are added in order (1, 2, ... from the seed); `end` is None while more
    slices are needed to decide, then the number of slices past the seed that hold the
    object."""

    def __init__(self, rules: TrackingRules):
        self.rules = rules
        self.total = self.peak = 0.0
        self.peak_at = 0
        self.count = 0

    def add(self, log_odds: float) -> int | None:
        self.count += 1
        self.total += log_odds
        if self.total > self.peak:
            self.peak, self.peak_at = self.total, self.count
        return self.end

    @property
    def end(self) -> int | None:
        fallen = self.peak - self.total >= self.rules.end_drop
        if fallen or self.count - self.peak_at >= self.rules.end_lookahead:
            return self.peak_at
        return None


DEFAULT_RULES = TrackingRules()
