"""Overlap metrics between binary masks."""

from __future__ import annotations

import warnings

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


def surface_metrics(prediction: np.ndarray, reference: np.ndarray, spacing, tolerance_mm: float) -> tuple[float, float]:
    """(normalised surface Dice at `tolerance_mm`, 95th-percentile Hausdorff distance in mm)
    for 2D or 3D masks, computed with MONAI. Both empty: (1, 0); one empty: (0, inf)."""
    has_prediction, has_reference = bool(np.any(prediction)), bool(np.any(reference))
    if not has_prediction and not has_reference:
        return 1.0, 0.0
    if not has_prediction or not has_reference:
        return 0.0, float("inf")
    import torch
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    def one_hot(mask):
        mask = torch.from_numpy(np.ascontiguousarray(mask, dtype=bool))
        return torch.stack([~mask, mask])[None].float()

    spacing = [float(s) for s in spacing]
    predicted, expected = one_hot(prediction), one_hot(reference)
    with warnings.catch_warnings():  # MONAI warns about its own internal deprecations
        warnings.simplefilter("ignore", FutureWarning)
        nsd = compute_surface_dice(predicted, expected, class_thresholds=[tolerance_mm], include_background=False, spacing=spacing)
        hd95 = compute_hausdorff_distance(predicted, expected, include_background=False, percentile=95, spacing=spacing)
    return float(nsd.item()), float(hd95.item())
