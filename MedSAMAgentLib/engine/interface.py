"""The engine interface: what the command line and the Slicer logic ask for and get back,
whether the models run in this process (`LocalEngine`) or on a department server
(`RemoteEngine`). Nothing above this interface knows which one it has.

Indices, prompts and masks of single slices are in display orientation along `view` (see
`orientation`); the result's mask is on the volume's own voxel grid. This module imports
neither torch nor any model code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..agent.records import AgentRecord
from ..errors import PromptError
from ..io.volumes import Geometry, Volume
from ..orientation import VIEWS, SlicePlane
from ..progress import CancelCheck, ProgressCallback
from ..prompts import SlicePrompts, check_prompts, check_seed_slice, checked_range


@dataclass
class SegmentationRequest:
    """One job. With a `target`, the agent places the prompts on `key_slice` (or finds the
    key slice when it is None); otherwise `prompts`, or a finished `key_mask`, seed
    propagation from `key_slice`. `prompts_at` adds prompts on further slices, each one more
    seed (on the key slice they replace `prompts`). `locked` slices are kept voxel for voxel
    and condition the segmenter. `previous` (on the volume's grid) and `settled` (its seed
    slices) make the job an update: only the slices the new seeds can change are computed,
    every other one is kept as `previous` has it. `truth` (a display-oriented stack) feeds
    the simulated clinician only and never leaves this computer."""

    volume: Volume
    view: str = "axial"
    window: str | None = None
    key_slice: int | None = None
    target: str = ""
    prompts: SlicePrompts | None = None
    key_mask: np.ndarray | None = None
    locked: dict[int, np.ndarray] = field(default_factory=dict)
    slice_range: tuple[int, int] | None = None
    seeded_components_only: bool = True
    prompts_at: dict[int, SlicePrompts] = field(default_factory=dict)
    previous: np.ndarray | None = None  # (k, j, i) bool, on the volume's grid
    settled: tuple[int, ...] = ()
    segmenter: str | None = None  # None: the engine's default
    recheck_every: int | None = None
    truth: np.ndarray | None = None

    @property
    def uses_agent(self) -> bool:
        return bool(self.target)

    def check(self) -> None:
        """Refuse a request that cannot mean anything, before any work (one message for
        the first fault found)."""
        if self.view not in VIEWS:
            raise PromptError(f"unknown view {self.view!r}; choose one of {', '.join(VIEWS)}")
        if self.uses_agent:
            if self.prompts is not None or self.key_mask is not None:
                raise PromptError("give either a target (the agent places the prompts) or prompts, not both")
            if self.previous is not None:
                raise PromptError("an earlier result is updated from prompts, not from a target: place a box or points")
        elif self.key_slice is None:
            raise PromptError("a key slice is needed unless the agent searches for the target")
        elif self.prompts is None and self.key_mask is None and self.key_slice not in self.locked and self.key_slice not in self.prompts_at:
            raise PromptError(f"no prompt given on the key slice {self.key_slice}: a box or at least one point is needed")
        if self.previous is not None and self.previous.shape != self.volume.array.shape:
            raise PromptError(
                f"the earlier result has shape {self.previous.shape}, the volume {self.volume.array.shape}: it belongs to another volume"
            )
        if self.recheck_every is not None and self.recheck_every < 1:
            raise PromptError(f"recheck every {self.recheck_every} slices: give a positive number")
        self._check_slices()

    def _check_slices(self) -> None:
        """Every slice and prompt fits the volume and the range: refused here, before any
        model is loaded or any voxel is sent."""
        plane = SlicePlane.for_view(self.volume.geometry, self.view)
        checked_range(self.key_slice, self.slice_range, plane.num_slices)
        if self.prompts is not None:
            check_prompts(self.prompts, plane.image_shape)
        for index, prompts in self.prompts_at.items():
            check_seed_slice(index, plane.num_slices, self.slice_range, "prompt")
            check_prompts(prompts, plane.image_shape)
        for index in self.settled:
            check_seed_slice(index, plane.num_slices, None, "earlier seed")


@dataclass
class SegmentationOutcome:
    """A finished job: the mask on the volume's grid, where the agent started, and the
    agent's record (key slice first, then the search and the reviews)."""

    mask: np.ndarray  # (k, j, i) bool
    view: str
    key_slice: int
    window: str
    seconds: float
    records: list[AgentRecord] = field(default_factory=list)
    corrections: list[int] = field(default_factory=list)

    def summary(self, geometry: Geometry, seconds: float | None = None) -> str:
        """Voxels, mL, the slices holding the object and the first and last of them (where
        the user checks the ends, in the numbering `--slice` and `--range` take), and seconds
        (the job's, or `seconds`)."""
        voxels = int(self.mask.sum())
        millilitres = voxels * geometry.voxel_volume_ml
        plane = SlicePlane.for_view(geometry, self.view)
        held = np.flatnonzero(plane.to_display(self.mask).any(axis=(1, 2)))
        extent = f" ({held[0]} to {held[-1]})" if len(held) else ""
        seconds = self.seconds if seconds is None else seconds
        return f"{voxels} voxels, {millilitres:.1f} mL, {len(held)} {self.view} slices{extent}, {seconds:.1f} s"


class Engine(ABC):
    """Runs segmentation jobs; implementations differ only in where the models live."""

    @abstractmethod
    def run(
        self,
        request: SegmentationRequest,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> SegmentationOutcome:
        """Run one job. Raises a `MedSAMAgentError` with one clear line on failure, and
        `Cancelled` on cancel; either carries the agent's record so far in `records`."""

    @abstractmethod
    def preflight(self, segmenter: str | None = None, uses_agent: bool = False) -> None:
        """Refuse at once, before any volume is read or sent, what this engine cannot run:
        weights that are not here, an agent it lacks, a server that refuses the key or
        speaks another API version."""

    @abstractmethod
    def describe(self) -> str:
        """Where and with what the models run, for the user (no secrets)."""

    def close(self) -> None:
        """Release what the engine holds (models, connections)."""
