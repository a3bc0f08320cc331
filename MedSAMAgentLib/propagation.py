"""From one prompted slice to a 3D mask: the rules shared by every segmenter.

- Tracking runs from the key slice forward, then backward; without a user range it stops
  once the object has been absent for `ABSENT_SLICES_TO_STOP` consecutive slices (never
  before a locked slice that still holds the object); with a range it covers the range.
- The two directions are united; the largest 3D connected component is kept by default.
- Locked slices (masks the user drew or corrected) are conditioning inputs for tracking
  and are copied into the output voxel for voxel, whatever else happens.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .errors import MedSAMAgentError, PromptError
from .io.volumes import Volume
from .progress import CancelCheck, ProgressCallback, check_cancel, report
from .prompts import SlicePrompts, check_prompts
from .segmenters.base import Seed, Segmenter, SliceFrames

ABSENT_SLICES_TO_STOP = 2


@dataclass
class VolumeRequest:
    """What to segment: a key slice with prompts (or a finished key mask), locked slices,
    and an optional inclusive slice range. Indices and masks are in display orientation."""

    key_slice: int
    prompts: SlicePrompts | None = None
    key_mask: np.ndarray | None = None
    locked: Mapping[int, np.ndarray] = field(default_factory=dict)
    slice_range: tuple[int, int] | None = None
    keep_largest_component: bool = True


@dataclass
class SegmentationResult:
    mask: np.ndarray  # (k, j, i) bool, on the input grid
    stack: np.ndarray  # (slice, row, col) bool, display orientation
    frames: SliceFrames
    seconds: float


def segment(
    volume: Volume,
    segmenter: Segmenter,
    request: VolumeRequest,
    frames: SliceFrames,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> SegmentationResult:
    """`segment_volume`, with the mask brought back onto the volume's grid."""
    started = time.perf_counter()
    stack = segment_volume(segmenter, frames, request, progress=progress, cancel=cancel)
    mask = frames.plane.from_display(stack)
    return SegmentationResult(mask=mask, stack=stack, frames=frames, seconds=time.perf_counter() - started)


def segment_volume(
    segmenter: Segmenter,
    frames: SliceFrames,
    request: VolumeRequest,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> np.ndarray:
    """Run the request; return a (slices, rows, cols) boolean stack in display orientation."""
    num_slices = len(frames)
    first, last = _checked_range(request, num_slices)
    locked = _checked_locked(request.locked, frames.image_shape, num_slices)
    seed = _seed(request, locked, frames.image_shape)
    key = request.key_slice
    result = np.zeros((num_slices, *frames.image_shape), dtype=bool)
    total = last - first + 1
    done = 0
    for stop in [last] + ([first] if first < key else []):
        backward = stop < key
        must_reach = _furthest_locked_object(locked, key, stop)
        absent = 0
        tracker = segmenter.track(frames, seed, locked, stop)
        try:
            for slice_index, mask in tracker:
                check_cancel(cancel)
                if backward and slice_index == key:
                    continue  # produced by the forward pass
                mask = locked.get(slice_index, mask)
                if slice_index == key and not mask.any():
                    raise MedSAMAgentError(
                        f"the segmenter found nothing for the prompt on slice {key}; "
                        "check the box, the window and the slice"
                    )
                result[slice_index] |= mask
                done += 1
                report(progress, f"{segmenter.name}: slice {slice_index}", done, total)
                absent = 0 if mask.any() else absent + 1
                if request.slice_range is None and absent >= ABSENT_SLICES_TO_STOP and _passed(slice_index, must_reach, backward):
                    break
        finally:
            tracker.close()
    if request.keep_largest_component:
        result = largest_component(result)
    for slice_index, mask in locked.items():
        result[slice_index] = mask
    report(progress, "done", total, total)
    return result


def largest_component(stack: np.ndarray) -> np.ndarray:
    """Keep the largest 26-connected component of a 3D mask."""
    labels, count = ndimage.label(stack, structure=np.ones((3, 3, 3), bool))
    if count <= 1:
        return stack
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _seed(request: VolumeRequest, locked: Mapping[int, np.ndarray], image_shape) -> Seed:
    key = request.key_slice
    if key in locked:
        return Seed(key, mask=locked[key])
    if request.key_mask is not None:
        if request.key_mask.shape != tuple(image_shape):
            raise ValueError(f"key mask shape {request.key_mask.shape} differs from the slice {tuple(image_shape)}")
        return Seed(key, mask=request.key_mask.astype(bool))
    if request.prompts is None:
        raise PromptError("no prompt given: a box (--box) or at least one point (--point) is needed")
    return Seed(key, prompts=check_prompts(request.prompts, image_shape))


def _checked_range(request: VolumeRequest, num_slices: int) -> tuple[int, int]:
    key = request.key_slice
    if not 0 <= key < num_slices:
        raise PromptError(f"slice {key} is outside the volume: slices are 0 to {num_slices - 1}")
    if request.slice_range is None:
        return 0, num_slices - 1
    first, last = request.slice_range
    if first > last:
        raise PromptError(f"range {first} {last} is inverted: give the first slice, then the last")
    if first < 0 or last >= num_slices:
        raise PromptError(f"range {first} {last} is outside the volume: slices are 0 to {num_slices - 1}")
    if not first <= key <= last:
        raise PromptError(f"the key slice {key} is outside the range {first} {last}")
    return first, last


def _checked_locked(locked: Mapping[int, np.ndarray], image_shape, num_slices: int) -> dict[int, np.ndarray]:
    checked = {}
    for slice_index, mask in locked.items():
        if not 0 <= slice_index < num_slices:
            raise PromptError(f"locked slice {slice_index} is outside the volume")
        if mask.shape != tuple(image_shape):
            raise ValueError(f"locked mask for slice {slice_index} has shape {mask.shape}, expected {tuple(image_shape)}")
        checked[int(slice_index)] = mask.astype(bool)
    return checked


def _furthest_locked_object(locked: Mapping[int, np.ndarray], key: int, stop: int) -> int:
    """The locked slice holding the object furthest from the key towards `stop`."""
    ahead = [index for index, mask in locked.items() if mask.any() and min(key, stop) <= index <= max(key, stop)]
    if not ahead:
        return key
    return max(ahead) if stop >= key else min(ahead)


def _passed(slice_index: int, must_reach: int, backward: bool) -> bool:
    return slice_index <= must_reach if backward else slice_index >= must_reach
