"""The module's logic, without a GUI: `process` (and `propagate`, `rerun`) take MRML nodes
and a job, run the engine (this computer's, or a MedSAM-Agent server's: the same request
and result either way), and write the result into a segment as one undo step.

Every run has three phases so that the widget can keep model work off the GUI thread:
`prepare` reads nodes (main thread), `compute` runs models (any thread, no MRML),
`apply` writes the segment (main thread). Headless callers use the one-call methods.
Nothing is written unless `compute` finishes: a failure or a cancel leaves the
segmentation exactly as it was. The agent's record of the last run, finished, failed or
cancelled, is kept in `last_run` for the widget to show and save.

Several targets (one per line of the target) run the engine once each and are written as
new segments, one per target, in a single undo step; a target that fails is reported
by name and the others are written.

Edits: the logic remembers what it last wrote into each segment. Slices the radiologist
changed since (or drew before any run) are locked on the next run: kept voxel for voxel and
given to the segmenter as conditioning masks.

Growing: Segment with prompts on a slice that was not one of the last run's seeds, into the
segment holding that run's result (same view), is an update: only the slices the new seeds
reach are computed, every other slice is kept voxel for voxel, and one undo takes it back.
To start afresh, segment into a new segment (or one emptied first).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from MedSAMAgentLib.anatomy import segment_style
from MedSAMAgentLib.engine.interface import Engine, SegmentationOutcome, SegmentationRequest
from MedSAMAgentLib.errors import Cancelled, MedSAMAgentError, PromptError
from MedSAMAgentLib.io.volumes import Volume
from MedSAMAgentLib.orientation import SlicePlane
from MedSAMAgentLib.progress import CancelCheck, ProgressCallback
from MedSAMAgentLib.targets import parse_targets

from .edits import EditTracker, LastResult, edited_slices, grows, seed_slices
from .markup_prompts import markup_prompts
from .run_record import LastRunRecord
from .segment_writer import SegmentWriter, segment_array
from .volume_nodes import volume_from_node

SEGMENT, PROPAGATE, RERUN = "segment", "propagate", "rerun"


@dataclass
class SegmentationJob:
    """What the radiologist asked for. With a `target`, the agent places the prompts;
    without one, `box_ras`/`points_ras` (from markups) are the prompts. With a
    `server_url`, the models run on that MedSAM-Agent server, with `server_key`."""

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
    server_url: str | None = None
    server_key: str | None = None
    box_ras: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    points_ras: list[tuple[tuple[float, float, float], bool]] = field(default_factory=list)
    recheck_every: int | None = None
    slice_range: tuple[int, int] | None = None
    seeded_components_only: bool = True
    segment_name: str | None = None

    def __repr__(self) -> str:  # never show the keys
        return f"SegmentationJob(target={self.target!r}, view={self.view!r}, key_slice={self.key_slice}, server_url={self.server_url!r})"

    @property
    def targets(self) -> list[str]:
        """One target per line (or ';'-separated)."""
        return parse_targets(self.target)


@dataclass
class PreparedRun:
    """Everything `compute` needs, read from the scene on the main thread: one request
    per segment to write (one per target; one otherwise), named by `names`."""

    mode: str
    job: SegmentationJob
    requests: list[SegmentationRequest]
    names: list[str]
    volume_node: object
    segmentation_node: object
    segment_id: str | None

    @property
    def request(self) -> SegmentationRequest:
        return self.requests[0]

    @property
    def volume(self) -> Volume:
        return self.request.volume


@dataclass
class RunReport:
    segment_id: str  # the first segment written
    key_slice: int
    locked_slices: list[int]
    summary: str
    records: list = field(default_factory=list)  # the agent's runs (agent.records.AgentRecord), key slice first
    segment_ids: list[str] = field(default_factory=list)  # every segment written, in target order
    failed: list[str] = field(default_factory=list)  # "target: reason" for each target that failed


class SegmentationLogic:
    last_run: LastRunRecord | None = None  # the agent's record of the last run (compute), whatever its end

    def __init__(self, scene):
        self.scene = scene
        self.writer = SegmentWriter(scene)
        self.edits = EditTracker()
        # For each write still in the writer's undo history: each written segment's previous
        # last result, so that an undo also takes back what the edit tracker remembers.
        self._undo_records: list[tuple[str, list[tuple[str, LastResult | None]]]] = []
        self._engine: tuple[tuple, Engine] | None = None

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
        """Propagate again from the last run's key slice and its other seed slices (kept as
        they are), keeping every edited slice."""
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
        plane = SlicePlane.for_view(volume.geometry, view)
        current = self._current(segmentation_node, segment_id, volume_node)
        locked = self._locked(current, last, plane)
        request = SegmentationRequest(
            volume=volume, view=view, window=job.window, locked=locked, slice_range=job.slice_range,
            seeded_components_only=job.seeded_components_only, segmenter=job.segmenter,
        )
        names = [job.segment_name or "Segment"]
        if mode == SEGMENT:
            if job.target:
                names = job.targets
                if len(names) > 1 and segment_id:
                    raise PromptError("several targets make one new segment each: choose no segment (a new one) to write into")
                request.target, request.recheck_every = names[0], job.recheck_every
                request.key_slice = None if job.find_slice else self._key_slice(job, plane)
            else:
                placed = markup_prompts(job, volume, plane, self._key_slice(job, plane))
                request.key_slice, request.prompts, request.prompts_at = placed.key_slice, placed.prompts, placed.prompts_at
                request.slice_range = placed.slice_range
                if grows(last, current, view, placed.slices):
                    request.previous, request.settled = current, last.seeds
        else:
            if mode == RERUN:
                if last is None:
                    raise MedSAMAgentError("nothing to re-run: segment first, then edit slices and re-run")
                request.key_slice = last.key_slice
                request.slice_range = job.slice_range or last.slice_range
                if current is not None:  # the last run's other seeds stay as they are, as seeds
                    stack = plane.to_display(current)
                    locked.update({index: stack[index].copy() for index in last.seeds if index != last.key_slice and index not in locked})
            else:
                request.key_slice = self._key_slice(job, plane)
            if current is None:
                raise MedSAMAgentError("the segment is empty: draw on the key slice or segment first")
            request.key_mask = plane.to_display(current)[request.key_slice].copy()
            if not request.key_mask.any() and not locked:
                raise MedSAMAgentError(
                    f"the segment is empty on {view} slice {request.key_slice}: draw there first, or go to a drawn slice"
                )
        request.check()
        self.engine_for(job).preflight(request.segmenter, request.uses_agent)
        requests = [request] + [dataclasses.replace(request, target=name) for name in names[1:]]
        return PreparedRun(mode, job, requests, names, volume_node, segmentation_node, segment_id)

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

    # -- phase 2: models (any thread, no MRML) ------------------------------------------
    def compute(self, prepared: PreparedRun, progress: ProgressCallback | None = None,
                cancel: CancelCheck | None = None) -> list[SegmentationOutcome | MedSAMAgentError]:
        """One outcome per request; with several targets, a target's failure is kept in its
        place (the others go on), unless every target fails or the user cancels. Whatever
        the end, the agent's record of every target is kept in `last_run`."""
        engine = self.engine_for(prepared.job)
        results: list[SegmentationOutcome | MedSAMAgentError] = []
        runs: list[LastRunRecord] = []
        count = len(prepared.requests)
        try:
            for number, (name, request) in enumerate(zip(prepared.names, prepared.requests), 1):
                def step(text, done, total, prefix=f"{name} ({number}/{count})"):
                    if progress is not None:
                        progress(f"{prefix}: {text}" if count > 1 else text, done, total)

                try:
                    outcome = engine.run(request, progress=step, cancel=cancel)
                except MedSAMAgentError as error:
                    runs.append(LastRunRecord.failed(name, error))
                    if count == 1 or isinstance(error, Cancelled):
                        raise
                    results.append(error)
                    continue
                runs.append(LastRunRecord.done(name, outcome))
                results.append(outcome)
        finally:
            self.last_run = LastRunRecord.of_targets(runs) if runs else None
        if all(isinstance(result, MedSAMAgentError) for result in results):
            reasons = "; ".join(f"{name}: {error}" for name, error in zip(prepared.names, results))
            raise MedSAMAgentError(f"every target failed; nothing was changed ({reasons})")
        return results

    @staticmethod
    def machine_report(server_url: str = "", server_key: str = "") -> str:
        """What `medsam-agent doctor` prints, for the "Where to run" section: this machine
        and, given a server, whether it answers, speaks this API and accepts the key."""
        from MedSAMAgentLib.doctor import diagnose, render

        return render(diagnose(server_url or None, server_key or None, "the module's server key"))

    def save_last_run(self, parent_folder) -> str:
        """Write the last run's agent record into a new folder in `parent_folder`."""
        if self.last_run is None:
            raise MedSAMAgentError("there is no run to save yet")
        return str(self.last_run.save(parent_folder))

    def engine_for(self, job: SegmentationJob) -> Engine:
        """The job's engine: this computer's, or the server's. Kept while the job's engine
        settings stay the same, so that models stay loaded (one engine at a time)."""
        if job.server_url:
            settings = ("server", job.server_url, job.server_key)
        else:
            settings = ("local", job.segmenter, job.checkpoint, job.device, job.runtime, job.policy, job.agent_model, job.endpoint_url,
                        job.api_key)
        if self._engine is None or self._engine[0] != settings:
            if self._engine is not None:
                self._engine[1].close()
            self._engine = (settings, self._new_engine(job))
        return self._engine[1]

    @staticmethod
    def _new_engine(job: SegmentationJob) -> Engine:
        if job.server_url:
            from MedSAMAgentLib.remote import RemoteEngine

            return RemoteEngine(job.server_url, api_key=job.server_key, key_source="the module's server settings")
        from MedSAMAgentLib.engine.local import LocalEngine, PolicySpec

        policy = PolicySpec(name=job.policy, model=job.agent_model, endpoint=job.endpoint_url, api_key=job.api_key)
        # Weights come from this machine's folders only (`medsam-agent models fetch`): a
        # download of gigabytes must not start behind a click.
        return LocalEngine(job.segmenter, {job.segmenter: job.checkpoint} if job.checkpoint else {}, job.device, policy, job.runtime,
                           downloads=False)

    # -- phase 3: write (main thread) ---------------------------------------------------
    def apply(self, prepared: PreparedRun, outcomes: list[SegmentationOutcome | MedSAMAgentError]) -> RunReport:
        started = time.perf_counter()
        job, several = prepared.job, len(prepared.names) > 1
        done = [(name, outcome) for name, outcome in zip(prepared.names, outcomes) if isinstance(outcome, SegmentationOutcome)]
        failed = [f"{name}: {outcome}" for name, outcome in zip(prepared.names, outcomes) if not isinstance(outcome, SegmentationOutcome)]
        styles = [segment_style(name, None if several else job.segment_name) for name, _ in done]
        node_id = prepared.segmentation_node.GetID()
        writes = [(None if several else prepared.segment_id, outcome.mask, style) for (_, outcome), style in zip(done, styles)]
        written = self.writer.write_many(prepared.segmentation_node, prepared.volume_node, writes)
        if self._undo_records and self._undo_records[-1][0] != node_id:
            self._undo_records.clear()  # the writer's history starts again for another segmentation
        self._undo_records.append((node_id, [(segment_id, self.edits.last(node_id, segment_id)) for segment_id, _ in written]))
        del self._undo_records[: -self.writer.logic.GetMaximumNumberOfUndoStates()]
        request = prepared.request
        for (segment_id, content), (_, outcome) in zip(written, done):
            seeds = seed_slices(request, outcome.key_slice)
            self.edits.remember(node_id, segment_id, LastResult.of(content, outcome.view, outcome.key_slice, request.slice_range, seeds))
        seconds = max(outcome.seconds for _, outcome in done) + time.perf_counter() - started
        summaries = [outcome.summary(prepared.volume.geometry, seconds=seconds) for _, outcome in done]
        summary = summaries[0] if not several else "; ".join(f"{style.name}: {text}" for style, text in zip(styles, summaries))
        return RunReport(
            segment_id=written[0][0],
            key_slice=done[0][1].key_slice,
            locked_slices=sorted(request.locked),
            summary=summary + "".join(f"; {line} (failed)" for line in failed),
            records=[record for _, outcome in done for record in outcome.records],
            segment_ids=[segment_id for segment_id, _ in written],
            failed=failed,
        )

    def undo(self) -> None:
        """Take back the last run: the segmentation as it was, and what the edit tracker
        remembered of the segment before it."""
        self.writer.undo()
        if self._undo_records:
            node_id, segments = self._undo_records.pop()
            for segment_id, previous in segments:
                if previous is None:
                    self.edits.forget(node_id, segment_id)
                else:
                    self.edits.remember(node_id, segment_id, previous)

    def forget_scene(self) -> None:
        """After the scene is closed: node IDs are reused by the next scene, so nothing
        remembered of this one may carry over."""
        self.edits = EditTracker()
        self._undo_records.clear()
