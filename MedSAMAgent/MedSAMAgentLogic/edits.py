"""What the radiologist changed since the last run: slices whose content differs from what
the logic last wrote are edits, and edits are locked on the next run (kept voxel for voxel
and given to the segmenter as conditioning masks).

The last run's seed slices are remembered too: prompts placed later on another slice grow
that result (an update) instead of replacing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from MedSAMAgentLib.engine.interface import SegmentationRequest
from MedSAMAgentLib.orientation import SlicePlane


@dataclass
class LastResult:
    """A written result, bit-packed (a 512x512x300 mask takes 10 MB instead of 80)."""

    packed: np.ndarray
    shape: tuple[int, int, int]
    view: str
    key_slice: int
    slice_range: tuple[int, int] | None
    seeds: tuple[int, ...] = ()  # display slices along `view` the run started from

    @classmethod
    def of(cls, mask: np.ndarray, view: str, key_slice: int, slice_range=None, seeds=()) -> LastResult:
        return cls(np.packbits(mask.astype(bool), axis=None), mask.shape, view, key_slice, slice_range, tuple(seeds))

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


def seed_slices(request: SegmentationRequest, key_slice: int) -> tuple[int, ...]:
    """The slices a run started from: its key slice, its further prompted slices, the locked
    slices holding a mask and, for an update, the earlier result's seeds."""
    drawn = [index for index, mask in request.locked.items() if mask.any()]
    return tuple(sorted({key_slice, *request.prompts_at, *drawn, *request.settled}))


def grows(last: LastResult | None, current: np.ndarray | None, view: str, prompted: set[int]) -> bool:
    """Whether prompts on the `prompted` slices grow the segment's last result rather than
    start afresh: the segment holds that result (edits aside) of a run along the same view,
    and a prompt lies on a slice that was not one of its seeds."""
    if last is None or current is None or last.view != view or last.shape != current.shape:
        return False
    return not prompted <= set(last.seeds)
