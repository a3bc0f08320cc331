"""From prompted slices to a 3D mask: the rules shared by every segmenter.

- Each stretch between two seeds is tracked from both ends; each slice takes the mask of
  the track surer of it (when the segmenter says how sure it is), else the nearer seed's,
  or the other's where the nearer one lost the object (both, united, on the slice
  half-way).
- Beyond the outermost seeds, tracking runs until the object has been absent for
  `ABSENT_SLICES_TO_STOP` consecutive slices, or over the user's range whole.
- Only the 3D connected components holding a seed's mask are kept (by default); locked
  slices are copied into the output voxel for voxel, whatever else happens.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import MedSAMAgentError
from ..io.volumes import Volume
from ..progress import CancelCheck, ProgressCallback, check_cancel, report
from ..segmenters.base import Seed, Segmenter, SliceFrames
from .request import Plan, Stretch, VolumeRequest, plan

ABSENT_SLICES_TO_STOP = 2


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
    job = plan(request, len(frames), frames.image_shape)
    stretches = job.stretches()
    run = _Run(segmenter, frames, job, progress, cancel, total=sum(len(s.slices) for s in stretches) + len(job.new))
    region = job.region()
    result = np.zeros((len(frames), *frames.image_shape), dtype=bool)
    with contextlib.ExitStack() as tracks:
        run.tracks = tracks
        for stretch in stretches:
            for slice_index, mask in run.stretch(stretch).items():
                result[slice_index] = mask
        for slice_index in sorted(job.new):
            result[slice_index] = run.seed_mask(job.seeds[slice_index])
    if job.previous is not None:  # the earlier result joins the new slices to its seeds...
        result[~region] = job.previous[~region]
    if request.seeded_components_only:
        result = seeded_components(result, list(job.seeds))
    if job.previous is not None:  # ...and stays as it was, whatever the component selection
        result[~region] = job.previous[~region]
    for slice_index, mask in job.locked.items():
        result[slice_index] = mask
    report(progress, "done", run.total, run.total)
    return result


def seeded_components(stack: np.ndarray, seed_slices) -> np.ndarray:
    """The 26-connected components of a 3D mask that hold a voxel on one of `seed_slices`."""
    labels, count = ndimage.label(stack, structure=np.ones((3, 3, 3), bool))
    if count <= 1:
        return stack
    seeded = np.unique(labels[sorted(seed_slices)])
    return np.isin(labels, seeded[seeded > 0])


class _Run:
    """The tracks of one request: started lazily, each advanced only as far as needed."""

    def __init__(self, segmenter: Segmenter, frames: SliceFrames, job: Plan, progress, cancel, total: int):
        self.segmenter, self.frames, self.job = segmenter, frames, job
        self.progress, self.cancel = progress, cancel
        self.total, self.done = max(total, 1), 0
        self.tracks: contextlib.ExitStack | None = None
        self._seed_masks: dict[int, np.ndarray] = {}

    def stretch(self, stretch: Stretch) -> dict[int, np.ndarray]:
        if stretch.low_seed is not None and stretch.high_seed is not None:
            return self._between(stretch)
        seed = stretch.low_seed or stretch.high_seed
        towards = stretch.high if stretch.low_seed is not None else stretch.low
        return self._beyond(seed, towards)

    def seed_mask(self, seed: Seed) -> np.ndarray:
        """The seed's own mask: given, or what the first track from it found there."""
        if seed.mask is not None:
            return seed.mask
        if seed.slice_index not in self._seed_masks:
            self._track(seed, seed.slice_index).through(seed.slice_index)
        return self._seed_masks[seed.slice_index]

    def _between(self, stretch: Stretch) -> dict[int, np.ndarray]:
        """Both ends are seeds. Where both tracks say how sure they are of each mask, each
        slice takes the surer one's; otherwise each half comes from the nearer seed, the
        other filling in where the nearer track lost the object."""
        low, high = stretch.low, stretch.high
        up = self._track(stretch.low_seed, high, continues=True, conditioning=(stretch.high_seed,))
        down = self._track(stretch.high_seed, low, continues=True, conditioning=(stretch.low_seed,))
        lower = range(low + 1, (low + high) // 2 + 1)
        upper = range(-(-(low + high) // 2), high)
        up.through(lower[-1])
        down.through(upper[0])
        if up.confident and down.confident:  # both say how sure they are: each slice from the surer
            up.through(high - 1)
            down.through(low + 1)
            return {index: max((up, down), key=lambda track: (track.confidence[index], -track.distance(index))).masks[index]
                    for index in stretch.slices}
        if lost := [index for index in lower if not up.masks[index].any()]:
            down.through(min(lost))
        if lost := [index for index in upper if not down.masks[index].any()]:
            up.through(max(lost))
        filled = {}
        for index in stretch.slices:
            nearer, other = (up, down) if index - low < high - index else (down, up)
            if index - low == high - index:
                filled[index] = up.masks[index] | down.masks[index]
            elif nearer.masks[index].any() or index not in other.masks:
                filled[index] = nearer.masks[index]
            else:
                filled[index] = other.masks[index]
        return filled

    def _beyond(self, seed: Seed, towards: int) -> dict[int, np.ndarray]:
        """From the outermost seed towards `towards` (an emptied slice, or just past the
        range), until the object is absent for long enough unless the range is the user's."""
        step = 1 if towards > seed.slice_index else -1
        at_edge = towards in (self.job.first - 1, self.job.last + 1)
        stop = towards - step if at_edge else towards
        track = self._track(seed, stop, continues=self.job.bounded and at_edge)
        absent = 0
        for index in range(seed.slice_index + step, towards, step):
            track.through(index)
            absent = 0 if track.masks[index].any() else absent + 1
            if not self.job.bounded and absent >= ABSENT_SLICES_TO_STOP:
                break
        return {index: mask for index, mask in track.masks.items() if index != seed.slice_index}

    def _track(self, seed: Seed, stop: int, continues: bool = False, conditioning=()) -> _Track:
        track = _Track(self, seed, stop, continues, tuple(s for s in conditioning if s is not None))
        self.tracks.callback(track.close)
        return track

    def tracked(self, seed: Seed, slice_index: int, mask: np.ndarray) -> None:
        check_cancel(self.cancel)
        if slice_index == seed.slice_index:
            if slice_index in self._seed_masks:
                return
            if seed.mask is None and not mask.any():
                raise MedSAMAgentError(
                    f"the segmenter found nothing for the prompt on slice {slice_index}; check the box, the window and the slice"
                )
            self._seed_masks[slice_index] = mask
        self.done += 1
        report(self.progress, f"{self.segmenter.name}: slice {slice_index}", min(self.done, self.total), self.total)


class _Track:
    """One pass of the segmenter from a seed towards `stop`, advanced on demand."""

    def __init__(self, run: _Run, seed: Seed, stop: int, continues: bool, conditioning: tuple[Seed, ...]):
        self.run, self.seed = run, seed
        self.step = 1 if stop >= seed.slice_index else -1
        self.masks: dict[int, np.ndarray] = {}
        self.confidence: dict[int, float | None] = {}
        self.last = seed.slice_index - self.step
        self._slices = run.segmenter.track(
            run.frames, seed, run.job.locked, stop, continues=continues, conditioning=conditioning
        )

    def through(self, slice_index: int) -> None:
        while (slice_index - self.last) * self.step > 0:
            index, mask, confidence = next(self._slices)
            self.run.tracked(self.seed, index, mask)
            self.masks[index] = self.run.job.locked.get(index, mask)
            self.confidence[index] = confidence
            self.last = index

    @property
    def confident(self) -> bool:
        """Whether the segmenter gave a confidence for every slice beyond the seed so far."""
        return all(value is not None for index, value in self.confidence.items() if index != self.seed.slice_index)

    def distance(self, slice_index: int) -> int:
        return abs(slice_index - self.seed.slice_index)

    def close(self) -> None:
        self._slices.close()
