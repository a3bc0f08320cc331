"""What the radiologist changed since the last run: slices whose content differs from what
the logic last wrote are edits, and edits are locked on the next run (kept voxel for voxel
and given to the segmenter as conditioning masks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from MedSAMAgentLib.orientation import SlicePlane


@dataclass
class LastResult:
    """A written result, bit-packed (a 512x512x300 mask takes 10 MB instead of 80)."""

    packed: np.ndarray
    shape: tuple[int, int, int]
    view: str
    key_slice: int
    slice_range: tuple[int, int] | None

    @classmethod
    def of(cls, mask: np.ndarray, view: str, key_slice: int, slice_range=None) -> LastResult:
        return cls(np.packbits(mask.astype(bool), axis=None), mask.shape, view, key_slice, slice_range)

    def mask(self) -> np.ndarray:
        return np.unpackbits(self.packed, count=int(np.prod(self.shape))).reshape(self.shape).astype(bool)


class EditTracker:
    """Remembers, per segment, the last result the logic wrote."""

    def __init__(self):
        self._results: dict[tuple[str, str], LastResult] = {}

    def remember(self, segmentation_id: str, segment_id: str, result: LastResult) -> None:
        self._results[(segmentation_id, segment_id)] = result

    def last(self, segmentation_id: str, segment_id: str) -> LastResult | None:
        return self._results.get((segmentation_id, segment_id))

    def forget(self, segmentation_id: str, segment_id: str) -> None:
        self._results.pop((segmentation_id, segment_id), None)


def edited_slices(current: np.ndarray, last: LastResult, plane: SlicePlane) -> dict[int, np.ndarray]:
    """Display-oriented slices of `current` that differ from the last written result,
    along the plane's slice axis: {slice index: current mask on that slice}."""
    now = plane.to_display(current)
    before = plane.to_display(last.mask())
    changed = np.flatnonzero((now != before).any(axis=(1, 2)))
    return {int(index): now[index].copy() for index in changed}
