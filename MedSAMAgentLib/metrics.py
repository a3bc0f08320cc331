"""Overlap metrics between binary masks."""

from __future__ import annotations

import numpy as np


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice coefficient; 1.0 when both masks are empty."""
    total = int(np.count_nonzero(prediction)) + int(np.count_nonzero(reference))
    if total == 0:
        return 1.0
    return 2.0 * float(np.count_nonzero(np.logical_and(prediction, reference))) / total


def iou(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Intersection over union; 1.0 when both masks are empty."""
    union = int(np.count_nonzero(np.logical_or(prediction, reference)))
    if union == 0:
        return 1.0
    return float(np.count_nonzero(np.logical_and(prediction, reference))) / union
