"""A simulated clinician who knows the ground truth: the reference the model is compared to.

Turn 1: the truth's bounding box, each side pushed out by a random 0-10% of the box size
(people draw around an object, never exactly on its edge). Later turns: a click at the most interior point (largest
distance to the region's border) of the largest error region, positive in a missed region
and negative in a false one, the standard simulated-click protocol of interactive
segmentation; it stops once a turn gained less than `min_gain` IoU (or the mask is exact).
It answers in the model's tool-call format, so it runs through the same parser and loop.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ...errors import AgentError
from ...metrics import iou
from ..protocol import tool_call_text
from .base import Observation, Policy

BOX_JITTER = 0.10
MIN_IOU_GAIN = 0.01


class ClinicianPolicy(Policy):
    name = "clinician"

    def __init__(self, truth: np.ndarray | None = None, jitter: float = BOX_JITTER, min_gain: float = MIN_IOU_GAIN, seed: int = 0):
        self.truth = truth
        self.jitter = jitter
        self.min_gain = min_gain
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._last_iou: float | None = None

    def begin(self, description: str, truth: np.ndarray | None = None) -> None:
        if truth is not None:
            self.truth = truth.astype(bool)
        self._rng = np.random.default_rng(self.seed)
        self._last_iou = None

    def respond(self, observation: Observation) -> str:
        if self.truth is None:
            raise AgentError("the clinician policy needs a ground-truth mask (--gt)")
        truth = self.truth
        if observation.mask is None:
            return self._box(truth, observation)
        current = iou(observation.mask, truth)
        gained = None if self._last_iou is None else current - self._last_iou
        self._last_iou = current
        if current >= 1.0 or (gained is not None and gained < self.min_gain):
            return tool_call_text("stop_action", {})
        return self._click(observation.mask, truth, observation)

    def _box(self, truth: np.ndarray, observation: Observation) -> str:
        if not truth.any():
            return tool_call_text("stop_action", {})
        rows, cols = np.nonzero(truth)
        x0, x1, y0, y1 = cols.min(), cols.max(), rows.min(), rows.max()
        width, height = x1 - x0 + 1, y1 - y0 + 1
        outward = np.array([-width, -height, width, height])
        shift = self._rng.uniform(0.0, self.jitter, 4) * outward
        limits = np.array([observation.letterbox.slice_width - 1, observation.letterbox.slice_height - 1] * 2)
        corners = np.clip(np.array([x0, y0, x1, y1]) + shift, 0, limits)
        grid = [*observation.letterbox.to_grid(corners[0], corners[1]), *observation.letterbox.to_grid(corners[2], corners[3])]
        return tool_call_text("add_bbox", {"bbox_2d": grid})

    def _click(self, mask: np.ndarray, truth: np.ndarray, observation: Observation) -> str:
        missed, extra = truth & ~mask, mask & ~truth
        depth_missed, where_missed = _deepest_point(missed)
        depth_extra, where_extra = _deepest_point(extra)
        positive = depth_missed >= depth_extra
        row, col = where_missed if positive else where_extra
        grid = observation.letterbox.to_grid(col, row)
        return tool_call_text("add_point", {"point_2d": list(grid), "point_type": "positive" if positive else "negative"})


def _deepest_point(region: np.ndarray) -> tuple[float, tuple[int, int]]:
    """The point of `region`'s largest connected component farthest from its border."""
    if not region.any():
        return 0.0, (0, 0)
    labels, count = ndimage.label(region)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = labels == int(np.argmax(sizes))
    distance = ndimage.distance_transform_edt(np.pad(largest, 1))[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return float(distance[row, col]), (int(row), int(col))
