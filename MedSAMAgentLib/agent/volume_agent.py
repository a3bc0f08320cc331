"""From a text description to a 3D mask: the agent on a key slice, propagation from its
mask, and optional reviews of the propagated slices.

Key slice: given, or found by running the agent on slices sampled across the volume. Rule:
among the non-empty results, keep those whose segmenter confidence (predicted IoU) is at
least 80% of the best one, then take the largest mask. The largest confident cross-section
is normally near the middle of the structure: propagation then has the least distance to
cover each way, and starts from the mask with the most context; the confidence filter keeps
a large but unsure mask (often a neighbouring organ) from winning.

Reviews (`recheck`): every N slices from the key, and wherever the propagated area jumps by
more than half between neighbours, the agent sees the propagated mask as if it had drawn it
(a box around it, then the mask) and may refine it or stop; refined masks become
conditioning frames and propagation runs again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ..errors import MedSAMAgentError
from ..io.volumes import Volume
from ..progress import CancelCheck, ProgressCallback, check_cancel, report
from ..prompts import SlicePrompts
from ..propagation import SegmentationResult, VolumeRequest, segment
from ..segmenters.base import Segmenter, SliceFrames
from .loop import StartingMask, Trajectory, run_agent
from .policies import Policy
from .recording import record_of
from .records import KEY, REVIEW, SEARCH, AgentRecord

SEARCH_SLICES = 7
SEARCH_SPAN = (0.1, 0.9)
CONFIDENCE_SHARE = 0.8
AREA_JUMP = 0.5


@dataclass
class AgentRequest:
    description: str
    key_slice: int | None = None  # None: search for it
    recheck_every: int | None = None
    locked: dict[int, np.ndarray] = field(default_factory=dict)
    slice_range: tuple[int, int] | None = None
    seeded_components_only: bool = True
    prompts_at: dict[int, SlicePrompts] = field(default_factory=dict)  # the user's prompts on further slices


@dataclass
class AgentResult:
    """What the agent did, filled in as the run goes, so that a failed run still tells."""

    segmentation: SegmentationResult | None = None
    key_slice: int | None = None
    key_trajectory: Trajectory | None = None
    search: dict[int, Trajectory] = field(default_factory=dict)
    reviews: dict[int, Trajectory] = field(default_factory=dict)
    corrections: list[int] = field(default_factory=list)

    def records(self) -> list[AgentRecord]:
        """Every agent run as a record: the key slice first, then the search, then reviews."""
        records = []
        if self.key_trajectory is not None:
            records.append(record_of(self.key_trajectory, KEY, self.key_slice))
        records += [record_of(t, SEARCH, index) for index, t in self.search.items() if t is not self.key_trajectory]
        records += [record_of(t, REVIEW, index) for index, t in self.reviews.items()]
        return records


def segment_with_agent(
    volume: Volume,
    frames: SliceFrames,
    segmenter: Segmenter,
    policy: Policy,
    request: AgentRequest,
    truth: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> AgentResult:
    """`truth` (a display-oriented stack) feeds simulated policies only. An error raised
    on the way carries the record of the agent's runs so far."""
    outcome = AgentResult()
    try:
        _run(outcome, volume, frames, segmenter, policy, request, truth, progress, cancel)
    except MedSAMAgentError as error:
        error.records = outcome.records()
        raise
    return outcome


def _run(outcome: AgentResult, volume, frames, segmenter, policy, request: AgentRequest, truth, progress, cancel) -> None:
    spacing = frames.pixel_spacing

    def agent_on(slice_index: int, keep, starting: StartingMask | None = None) -> Trajectory:
        """The agent's loop on a slice; `keep` holds its trajectory from the first turn on,
        so that a run an error interrupts is still in the record."""
        check_cancel(cancel)
        return run_agent(
            frames[slice_index], request.description, policy, segmenter, spacing,
            starting=starting, truth=None if truth is None else truth[slice_index], cancel=cancel, started=keep,
        )

    if request.key_slice is None:
        candidates = search_slices(len(frames), request.slice_range)
        for number, slice_index in enumerate(candidates):
            report(progress, f"agent: looking for the target on slice {slice_index}", number, len(candidates))
            agent_on(slice_index, functools.partial(outcome.search.__setitem__, slice_index))
        key = choose_key_slice(outcome.search)
    else:
        key = frames.plane.check_slice(request.key_slice)
    report(progress, f"agent: segmenting key slice {key}", 0, 1)
    outcome.key_slice = key
    if key in outcome.search:
        outcome.key_trajectory = outcome.search[key]
    else:
        agent_on(key, functools.partial(setattr, outcome, "key_trajectory"))
    trajectory = outcome.key_trajectory
    if key not in request.locked and not trajectory.final_mask().any():
        raise MedSAMAgentError(
            f"the agent found no {request.description!r} on slice {key} ({trajectory.end_reason}); "
            "try another slice, --find-slice, or a more specific description"
        )
    volume_request = VolumeRequest(
        key_slice=key,
        key_mask=trajectory.final_mask(),
        locked=dict(request.locked),
        slice_range=request.slice_range,
        seeded_components_only=request.seeded_components_only,
        prompts_at={index: prompts for index, prompts in request.prompts_at.items() if index != key},
    )
    result = outcome.segmentation = segment(volume, segmenter, volume_request, frames, progress=progress, cancel=cancel)
    if request.recheck_every:
        for slice_index in review_slices(result.stack, key, request.recheck_every, skip=set(request.locked)):
            report(progress, f"agent: reviewing slice {slice_index}", 0, 1)
            keep = functools.partial(outcome.reviews.__setitem__, slice_index)
            review = agent_on(slice_index, keep, StartingMask(result.stack[slice_index]))
            if review.actions > 0:
                outcome.corrections.append(slice_index)
        if outcome.corrections:
            corrected = {index: outcome.reviews[index].final_mask() for index in outcome.corrections}
            volume_request.locked = {**corrected, **request.locked}  # the user's own edits win
            outcome.segmentation = segment(volume, segmenter, volume_request, frames, progress=progress, cancel=cancel)


def search_slices(num_slices: int, slice_range: tuple[int, int] | None = None, count: int = SEARCH_SLICES) -> list[int]:
    first, last = slice_range if slice_range else (0, num_slices - 1)
    low = first + SEARCH_SPAN[0] * (last - first)
    high = first + SEARCH_SPAN[1] * (last - first)
    return sorted(set(np.linspace(low, high, count).round().astype(int).tolist()))


def choose_key_slice(search: dict[int, Trajectory]) -> int:
    found = {index: t for index, t in search.items() if t.final_mask().any()}
    if not found:
        reasons = ", ".join(sorted({t.end_reason for t in search.values()}))
        raise MedSAMAgentError(f"the agent found the target on none of the slices it looked at ({reasons})")
    best = max(t.score for t in found.values())
    confident = {index: t for index, t in found.items() if t.score >= CONFIDENCE_SHARE * best}
    return max(confident, key=lambda index: (int(confident[index].final_mask().sum()), -index))


def review_slices(stack: np.ndarray, key: int, every: int, skip: set[int] = frozenset()) -> list[int]:
    """Every `every` slices from the key within the mask, and where the area jumps."""
    areas = stack.sum(axis=(1, 2))
    present = np.flatnonzero(areas)
    if present.size == 0:
        return []
    chosen = set(range(key + every, int(present[-1]) + 1, every)) | set(range(key - every, int(present[0]) - 1, -every))
    for index in range(int(present[0]) + 1, int(present[-1]) + 1):
        larger = max(areas[index], areas[index - 1])
        if larger and abs(int(areas[index]) - int(areas[index - 1])) > AREA_JUMP * larger:
            chosen.add(index if areas[index] < areas[index - 1] else index - 1)  # review the smaller side
    return sorted(index for index in chosen if index != key and index not in skip and areas[index] > 0)
