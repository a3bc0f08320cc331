"""What a propagation job asks for, checked, and the plan it implies.

Every slice that holds a prompt, the finished key mask or a locked mask that is not empty
is a seed: tracking runs from each seed towards its neighbours. Locked slices the user
emptied are anchors too: the object is absent there. Between two seeds the object is known
to continue, so the stretch is filled from both sides; beyond the outermost seeds tracking
runs to the object's end (or over the user's range).

An update (`previous`, an earlier result, with `settled`, its seeds) computes only the
stretches that touch a new seed and keeps every other slice of the earlier result as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import MedSAMAgentError, PromptError
from ..prompts import SlicePrompts, check_prompts, check_seed_slice, checked_range
from ..segmenters.base import Seed


@dataclass
class VolumeRequest:
    """What to segment. Indices and masks are in display orientation.

    - `key_slice` with `prompts` (or a finished `key_mask`): the first seed;
    - `prompts_at`: prompts on further slices, each one more seed (on the key slice they
      replace `prompts`: the later prompt wins);
    - `locked`: masks the user drew or corrected, kept voxel for voxel;
    - `slice_range`: inclusive; the object is followed over it whole (no end is sought);
    - `seeded_components_only`: keep only the 3D connected components that hold a seed's
      mask, so that a run-away into neighbouring anatomy is dropped and the user's object
      never is;
    - `previous` and `settled`: an earlier result (a display stack) and its seed slices, to
      update from the new seeds only.
    """

    key_slice: int
    prompts: SlicePrompts | None = None
    key_mask: np.ndarray | None = None
    locked: Mapping[int, np.ndarray] = field(default_factory=dict)
    slice_range: tuple[int, int] | None = None
    seeded_components_only: bool = True
    prompts_at: Mapping[int, SlicePrompts] = field(default_factory=dict)
    previous: np.ndarray | None = None
    settled: Sequence[int] = ()


@dataclass(frozen=True)
class Stretch:
    """The slices strictly between two anchors (`low` < `high`); an anchor that is not a
    seed is an emptied locked slice or lies just outside the range."""

    low: int
    high: int
    low_seed: Seed | None
    high_seed: Seed | None

    @property
    def slices(self) -> range:
        return range(self.low + 1, self.high)


@dataclass(frozen=True)
class Plan:
    seeds: dict[int, Seed]
    new: frozenset[int]
    """The seeds whose stretches are computed: every seed, or for an update the new ones."""
    locked: dict[int, np.ndarray]
    first: int
    last: int
    bounded: bool
    """Whether the user gave the range: then the object is followed over it whole."""
    previous: np.ndarray | None

    def stretches(self) -> list[Stretch]:
        """The stretches to compute, in slice order."""
        emptied = [index for index, mask in self.locked.items() if not mask.any() and self.first <= index <= self.last]
        anchors = sorted({self.first - 1, self.last + 1, *self.seeds, *emptied})
        chosen = []
        for low, high in zip(anchors, anchors[1:]):
            low_seed, high_seed = self.seeds.get(low), self.seeds.get(high)
            touches_new = low in self.new or high in self.new
            if high - low > 1 and touches_new and (low_seed or high_seed):
                chosen.append(Stretch(low, high, low_seed, high_seed))
        return chosen

    def region(self) -> np.ndarray:
        """Which slices this run computes (every one, unless it updates an earlier result)."""
        num_slices = len(self.previous) if self.previous is not None else self.last + 1
        computed = np.zeros(num_slices, bool)
        if self.previous is None:
            computed[:] = True
            return computed
        computed[sorted(self.new)] = True
        for stretch in self.stretches():
            computed[stretch.low + 1 : stretch.high] = True
        return computed


def plan(request: VolumeRequest, num_slices: int, image_shape: tuple[int, int]) -> Plan:
    """Check `request` against a volume of `num_slices` slices of `image_shape`, and plan it."""
    first, last = checked_range(request.key_slice, request.slice_range, num_slices)
    locked = _checked_locked(request.locked, image_shape, num_slices)
    seeds: dict[int, Seed] = {}
    prompted = dict(request.prompts_at)
    if request.prompts is not None and request.key_slice not in prompted:
        prompted = {request.key_slice: request.prompts, **prompted}
    for index, prompts in prompted.items():
        check_seed_slice(index, num_slices, request.slice_range, "prompt")
        seeds[int(index)] = Seed(int(index), prompts=check_prompts(prompts, image_shape))
    if request.key_mask is not None:
        if request.key_mask.shape != tuple(image_shape):
            raise ValueError(f"key mask shape {request.key_mask.shape} differs from the slice {tuple(image_shape)}")
        if not request.key_mask.any() and request.key_slice not in locked:
            raise MedSAMAgentError(
                f"the segmenter found nothing for the prompt on slice {request.key_slice}; check the box, the window and the slice"
            )
        seeds[request.key_slice] = Seed(request.key_slice, mask=request.key_mask.astype(bool))
    requested = set(seeds) | {request.key_slice}  # the seeds this request brings
    for index, mask in locked.items():  # the user's own mask wins on its slice
        seeds.pop(index, None)
        if mask.any():
            seeds[index] = Seed(index, mask=mask)
    if request.key_slice not in seeds and request.key_slice not in locked:
        raise PromptError("no prompt given: a box (--box) or at least one point (--point) is needed")
    previous = _checked_previous(request.previous, num_slices, image_shape)
    new = set(seeds)
    if previous is not None:
        new &= requested
        for index in request.settled:
            if index not in seeds and index not in locked and 0 <= index < num_slices and previous[index].any():
                seeds[int(index)] = Seed(int(index), mask=previous[index])
    return Plan(seeds, frozenset(new), locked, first, last, request.slice_range is not None, previous)


def _checked_locked(locked: Mapping[int, np.ndarray], image_shape, num_slices: int) -> dict[int, np.ndarray]:
    checked = {}
    for slice_index, mask in locked.items():
        if not 0 <= slice_index < num_slices:
            raise PromptError(f"locked slice {slice_index} is outside the volume")
        if mask.shape != tuple(image_shape):
            raise ValueError(f"locked mask for slice {slice_index} has shape {mask.shape}, expected {tuple(image_shape)}")
        checked[int(slice_index)] = mask.astype(bool)
    return checked


def _checked_previous(previous: np.ndarray | None, num_slices: int, image_shape) -> np.ndarray | None:
    if previous is None:
        return None
    if previous.shape != (num_slices, *image_shape):
        raise ValueError(f"the earlier result has shape {previous.shape}, expected {(num_slices, *image_shape)}")
    return previous.astype(bool)
