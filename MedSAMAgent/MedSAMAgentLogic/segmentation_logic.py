"""The module's logic, without a GUI: `process` (and `propagate`, `rerun`) take MRML nodes
and a job, run the engine, and write the result into a segment as one undo step.

Every run has three phases so that the widget can keep model work off the GUI thread:
`prepare` reads nodes (main thread), `compute` runs models (any thread, no MRML),
`apply` writes the segment (main thread). Headless callers use the one-call methods.
Nothing is written unless `compute` finishes: a failure or a cancel leaves the
segmentation exactly as it was.

Edits: the logic remembers what it last wrote into each segment. Slices the radiologist
changed since (or drew before any run) are locked on the next run: kept voxel for voxel and
given to the segmenter as conditioning masks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from MedSAMAgentLib.anatomy import segment_style
from MedSAMAgentLib.engine import SegmentationResult, segment, slice_frames
from MedSAMAgentLib.errors import MedSAMAgentError, PromptError
from MedSAMAgentLib.orientation import SlicePlane
from MedSAMAgentLib.progress import CancelCheck, ProgressCallback
from MedSAMAgentLib.prompts import SlicePrompts, box_from_ras, check_prompts, point_from_ras, ras_to_voxel
from MedSAMAgentLib.propagation import VolumeRequest
from MedSAMAgentLib.segmenters import create_segmenter
from MedSAMAgentLib.segmenters.base import Segmenter, SliceFrames
from MedSAMAgentLib.volume import Volume

from .edits import EditTracker, LastResult, edited_slices
from .segment_writer import SegmentWriter, segment_array
from .volume_nodes import volume_from_node

SEGMENT, PROPAGATE, RERUN = "segment", "propagate", "rerun"


@dataclass
class SegmentationJob:
    """What the radiologist asked for. With a `target`, the agent places the prompts;
    without one, `box_ras`/`points_ras` (from markups) are the prompts."""

    target: str = ""
    view: str = "axial"
    key_slice: int | None = None
    find_slice: bool = False
    window: str | None = None
    segmenter: str = "litemedsam"
    checkpoint: str | None = None
    device: str = "auto"
    runtime: str = "auto"
    policy: str = "qwen"
    agent_model: str | None = None
    endpoint_url: str | None = None
    api_key: str | None = None
    box_ras: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    points_ras: list[tuple[tuple[float, float, float], bool]] = field(default_factory=list)
    recheck_every: int | None = None
    slice_range: tuple[int, int] | None = None
    keep_largest_component: bool = True
    segment_name: str | None = None


@dataclass
class PreparedRun:
    """Everything `compute` needs, read from the scene on the main thread."""

    mode: str
    job: SegmentationJob
    volume: Volume
    frames: SliceFrames
    volume_node: object
    segmentation_node: object
    segment_id: str | None
    key_slice: int | None
    key_mask: np.ndarray | None
    prompts: SlicePrompts | None
    locked: dict[int, np.ndarray]
    slice_range: tuple[int, int] | None


@dataclass
class RunReport:
    segment_id: str
    key_slice: int
    locked_slices: list[int]
    summary: str
    trajectory: object = None  # the key slice's agent trajectory, when the agent ran
    outcome: object = None


class SegmentationLogic:
    def __init__(self, scene):
        self.scene = scene
        self.writer = SegmentWriter(scene)
        self.edits = EditTracker()
        # For each write still in the writer's undo history: the segment's previous last
        # result, so that an undo also takes back what the edit tracker remembers.
        self._undo_records: list[tuple[str, str, LastResult | None]] = []
        self._segmenters: dict[tuple, Segmenter] = {}
        self._policies: dict[tuple, object] = {}

    # -- one-call entry points (headless, and the module's self-test) --------------------
    def process(self, volume_node, segmentation_node, segment_id, job: SegmentationJob,
                progress: ProgressCallback | None = None, cancel: CancelCheck | None = None) -> RunReport:
        """Segment from the agent (job.target) or from markup prompts, then propagate."""
        return self._run(SEGMENT, volume_node, segmentation_node, segment_id, job, progress, cancel)

    def propagate(self, volume_node, segmentation_node, segment_id, job: SegmentationJob,
                  progress: ProgressCallback | None = None, cancel: CancelCheck | None = None) -> RunReport:
        """Propagate what the segment holds on the key slice through the volume."""
        return self._run(PROPAGATE, volume_node, segmentation_node, segment_id, job, progress, cancel)

    def rerun(self, volume_node, segmentation_node, segment_id, job: SegmentationJob | None = None,
              progress: ProgressCallback | None = None, cancel: CancelCheck | None = None) -> RunReport:
        """Propagate again from the last run's key slice, keeping every edited slice."""
        return self._run(RERUN, volume_node, segmentation_node, segment_id, job or SegmentationJob(), progress, cancel)

    def _run(self, mode, volume_node, segmentation_node, segment_id, job, progress, cancel) -> RunReport:
        prepared = self.prepare(mode, volume_node, segmentation_node, segment_id, job)
        return self.apply(prepared, self.compute(prepared, progress, cancel))

    # -- phase 1: read the scene (main thread) -----------------------------------------
    def prepare(self, mode: str, volume_node, segmentation_node, segment_id, job: SegmentationJob) -> PreparedRun:
        if segmentation_node is None:
            raise MedSAMAgentError("select or create an output segmentation")
        volume = volume_from_node(volume_node)
        last = self.edits.last(segmentation_node.GetID(), segment_id) if segment_id else None
        view = last.view if (mode == RERUN and last) else job.view
        frames = slice_frames(volume, view, job.window, target=job.target or None)
        current = self._current(segmentation_node, segment_id, volume_node)
        locked = self._locked(current, last, frames.plane)
        key_slice, key_mask, prompts, slice_range = None, None, None, job.slice_range
        if mode == SEGMENT:
            if job.target:
                key_slice = None if job.find_slice else self._key_slice(job, frames.plane)
            else:
                key_slice, prompts = self._markup_prompts(job, volume, frames.plane)
        else:
            if mode == RERUN:
                if last is None:
                    raise MedSAMAgentError("nothing to re-run: segment first, then edit slices and re-run")
                key_slice = last.key_slice
                slice_range = slice_range or last.slice_range
            else:
                key_slice = self._key_slice(job, frames.plane)
            if current is None:
                raise MedSAMAgentError("the segment is empty: draw on the key slice or segment first")
            key_mask = frames.plane.to_display(current)[key_slice].copy()
            if not key_mask.any() and not locked:
                raise MedSAMAgentError(f"the segment is empty on {view} slice {key_slice}: draw there first, or go to a drawn slice")
        return PreparedRun(
            mode, job, volume, frames, volume_node, segmentation_node, segment_id, key_slice, key_mask, prompts, locked, slice_range
        )

    def _current(self, segmentation_node, segment_id, volume_node) -> np.ndarray | None:
        if not segment_id or segmentation_node.GetSegmentation().GetSegment(segment_id) is None:
            return None
        content = segment_array(segmentation_node, segment_id, volume_node)
        return content if content.any() else None

    @staticmethod
    def _locked(current, last: LastResult | None, plane: SlicePlane) -> dict[int, np.ndarray]:
        """Slices edited since the last run, or, before any run, every slice the user drew."""
        if current is None and last is None:
            return {}
        if current is None:
            current = np.zeros(last.shape, bool)
        if last is None or last.shape != current.shape:
            stack = plane.to_display(current)
            return {int(i): stack[i].copy() for i in np.flatnonzero(stack.any(axis=(1, 2)))}
        return edited_slices(current, last, plane)

    @staticmethod
    def _key_slice(job: SegmentationJob, plane: SlicePlane) -> int:
        if job.key_slice is None:
            raise PromptError("no key slice: choose the view whose current slice is the key slice, or find it")
        return plane.check_slice(job.key_slice)

    def _markup_prompts(self, job: SegmentationJob, volume: Volume, plane: SlicePlane):
        """Prompts from an ROI and points placed in the views, on the key slice."""
        key = self._key_slice(job, plane)
        box = None
        if job.box_ras is not None:
            ends = sorted(ras_to_voxel(volume.geometry, corner)[plane.slice_axis] for corner in job.box_ras)
            if not ends[0] - 0.5 <= key <= ends[1] + 0.5:
                raise PromptError(
                    f"the ROI covers {plane.view} slices {ends[0]:.0f} to {ends[1]:.0f}, not the key slice {key}: "
                    "move the ROI or the slice view"
                )
            _, box = box_from_ras(volume.geometry, plane, *job.box_ras)
        points = []
        for ras, positive in job.points_ras:
            point_slice, point = point_from_ras(volume.geometry, plane, ras, positive)
            if point_slice != key:
                raise PromptError(f"a {'positive' if positive else 'negative'} point lies on slice {point_slice}, not on the key slice {key}")
            points.append(point)
        return key, check_prompts(SlicePrompts(box=box, points=tuple(points)), plane.image_shape)

    # -- phase 2: models (any thread, no MRML) ------------------------------------------
    def compute(self, prepared: PreparedRun, progress: ProgressCallback | None = None, cancel: CancelCheck | None = None):
        job = prepared.job
        segmenter = self._segmenter(job)
        if prepared.mode == SEGMENT and job.target:
            from MedSAMAgentLib.agent.volume_agent import AgentRequest, segment_with_agent

            request = AgentRequest(
                description=job.target,
                key_slice=prepared.key_slice,
                recheck_every=job.recheck_every,
                locked=prepared.locked,
                slice_range=prepared.slice_range,
                keep_largest_component=job.keep_largest_component,
            )
            return segment_with_agent(prepared.volume, prepared.frames, segmenter, self._policy(job), request, progress=progress, cancel=cancel)
        request = VolumeRequest(
            key_slice=prepared.key_slice,
            prompts=prepared.prompts,
            key_mask=prepared.key_mask,
            locked=prepared.locked,
            slice_range=prepared.slice_range,
            keep_largest_component=job.keep_largest_component,
        )
        return segment(prepared.volume, segmenter, request, prepared.frames, progress=progress, cancel=cancel)

    def _segmenter(self, job: SegmentationJob) -> Segmenter:
        key = (job.segmenter, job.checkpoint or None, job.device, job.runtime)
        if key not in self._segmenters:
            self._segmenters.clear()  # one model in memory at a time
            self._segmenters[key] = create_segmenter(*key)
        return self._segmenters[key]

    def _policy(self, job: SegmentationJob):
        from MedSAMAgentLib.agent.policies import create_policy

        key = (job.policy, job.agent_model, job.endpoint_url, job.api_key, job.device)
        if key not in self._policies:
            self._policies.clear()
            self._policies[key] = create_policy(
                job.policy, model=job.agent_model, url=job.endpoint_url, api_key=job.api_key, device=job.device
            )
        return self._policies[key]

    # -- phase 3: write (main thread) ---------------------------------------------------
    def apply(self, prepared: PreparedRun, outcome) -> RunReport:
        started = time.perf_counter()
        result: SegmentationResult = getattr(outcome, "segmentation", outcome)
        key_slice = getattr(outcome, "key_slice", prepared.key_slice)
        style = segment_style(prepared.job.target or prepared.job.segment_name or "Segment", prepared.job.segment_name)
        node_id = prepared.segmentation_node.GetID()
        segment_id, written = self.writer.write(prepared.segmentation_node, prepared.segment_id, prepared.volume_node, result.mask, style)
        if self._undo_records and self._undo_records[-1][0] != node_id:
            self._undo_records.clear()  # the writer's history starts again for another segmentation
        self._undo_records.append((node_id, segment_id, self.edits.last(node_id, segment_id)))
        del self._undo_records[: -self.writer.logic.GetMaximumNumberOfUndoStates()]
        self.edits.remember(node_id, segment_id, LastResult.of(written, prepared.frames.plane.view, key_slice, prepared.slice_range))
        seconds = result.seconds + time.perf_counter() - started
        return RunReport(
            segment_id=segment_id,
            key_slice=key_slice,
            locked_slices=sorted(prepared.locked),
            summary=result.summary(prepared.volume, seconds=seconds),
            trajectory=getattr(outcome, "key_trajectory", None),
            outcome=outcome,
        )

    def undo(self) -> None:
        """Take back the last run: the segmentation as it was, and what the edit tracker
        remembered of the segment before it."""
        self.writer.undo()
        if self._undo_records:
            node_id, segment_id, previous = self._undo_records.pop()
            if previous is None:
                self.edits.forget(node_id, segment_id)
            else:
                self.edits.remember(node_id, segment_id, previous)

    def forget_scene(self) -> None:
        """After the scene is closed: node IDs are reused by the next scene, so nothing
        remembered of this one may carry over."""
        self.edits = EditTracker()
        self._undo_records.clear()
