"""One browser session's scene and what the page asks of it: open a volume, run the Slicer
module's logic (`SegmentationLogic`: prepare on the page's thread, compute on a worker,
apply on the page's thread) as Segment, Propagate or Re-run, undo the last run, save the
segments and the agent's record. No trame here: the page's actions call these methods and
show what they return or raise."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from MedSAMAgentLogic.scene_inputs import slice_shown
from MedSAMAgentLogic.segment_writer import segment_array
from MedSAMAgentLogic.segmentation_logic import PROPAGATE, RERUN, SEGMENT, PreparedRun, RunReport, SegmentationJob, SegmentationLogic
from MedSAMAgentLogic.volume_nodes import add_volume_node

from ..anatomy import segment_style
from ..errors import MedSAMAgentError
from ..intensity import CT_PRESETS, DEFAULT_CT_PRESET
from ..io.dicom_seg import Provenance, agent_name
from ..io.volumes import Volume, read_volume
from ..io.writers import write_segments
from ..orientation import SlicePlane
from ..prompts import box_from_ras, point_from_ras


@dataclass
class EngineSettings:
    """Where the models run: this process (`segmenter`, `device`) or a department server."""

    segmenter: str = "litemedsam"
    device: str = "auto"
    runtime: str = "auto"
    policy: str = "qwen"  # who places the prompts for a typed target: the model here, or an `endpoint`
    agent_model: str | None = None
    endpoint_url: str | None = None
    server_url: str | None = None
    server_key: str | None = None


class Workspace:
    def __init__(self, slicer_app, engine: EngineSettings):
        self.app = slicer_app
        self.scene = slicer_app.scene
        self.engine = engine
        self.logic = SegmentationLogic(self.scene)
        self.volume: Volume | None = None
        self.volume_node = None
        self.segmentation_node = None
        self.segment_id: str | None = None
        self.provenance: Provenance | None = None  # how the segments were made, for a DICOM SEG

    # -- volumes -------------------------------------------------------------------------
    def open(self, path: Path, name: str) -> list[str]:
        """Read `path` by the project's input rules and show it; the notes the reader gave.
        A refused file raises before the scene changes."""
        notes: list[str] = []
        volume = read_volume(path, log=notes.append)
        self._close_volume()
        node = add_volume_node(self.scene, volume.array, volume.geometry.ijk_to_ras(), name)
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        if volume.modality == "CT":
            display.SetAutoWindowLevel(False)
            display.SetWindowLevel(*CT_PRESETS[DEFAULT_CT_PRESET])  # the window the engine uses by default
        segmentation = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{name} segments")
        segmentation.CreateDefaultDisplayNodes()
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(node)
        self.volume, self.volume_node, self.segmentation_node, self.segment_id = volume, node, segmentation, None
        self.provenance = None
        self.app.display_manager.show_volume_in_slice_background(node)
        for view in self.app.view_manager.get_slice_views():
            view.set_visible_in_3d(True)  # the 3D view shows where the three slices are
        self.app.display_manager.reset_views()
        return notes

    def _close_volume(self) -> None:
        for node in (self.segmentation_node, self.volume_node):
            if node is not None:
                for index in reversed(range(node.GetNumberOfDisplayNodes())):
                    self.scene.RemoveNode(node.GetNthDisplayNode(index))
                self.scene.RemoveNode(node)
        self.logic.forget_scene()
        self.volume = self.volume_node = self.segmentation_node = self.segment_id = None

    @property
    def volume_name(self) -> str:
        return self.volume_node.GetName() if self.volume_node is not None else ""

    # -- the red view's slice ------------------------------------------------------------
    def key_slice_of(self, slice_view) -> tuple[str, int]:
        """(engine view, slice index) that a slice view shows of the open volume."""
        return slice_shown(self.volume_node, slice_view.get_view_node())

    def slice_count(self, view: str) -> int:
        return SlicePlane.for_view(self.volume.geometry, view).num_slices

    def show_slice(self, slice_view, index: int) -> None:
        """Move a slice view onto slice `index` of the volume slices it shows."""
        view, _ = self.key_slice_of(slice_view)
        geometry = self.volume.geometry
        ijk = np.zeros(4)
        ijk[SlicePlane.for_view(geometry, view).slice_axis], ijk[3] = min(max(index, 0), self.slice_count(view) - 1), 1.0
        ras = (geometry.ijk_to_ras() @ ijk)[:3]
        slice_node = slice_view.get_view_node()
        normal = np.array([slice_node.GetSliceToRAS().GetElement(row, 2) for row in range(3)])
        slice_view.set_slice_value(float(normal @ ras))

    # -- runs ----------------------------------------------------------------------------
    def prepare(self, targets: str, box_ras, points_ras, segment_name: str, red_slice_node, slice_range=None) -> PreparedRun:
        """Segment: the typed targets (the agent places prompts), else the box and points.
        The key slice is the box's slice, else the one the red view shows; points on other
        slices are further seeds. Prompts on a slice the last run did not start from grow
        its segment (the logic's update). `slice_range`: the object's first and last slice
        along the red view, if the page sets them."""
        view, key_slice = self._shown(red_slice_node)
        job = self._job(target=targets.strip(), view=view, key_slice=key_slice, segment_name=segment_name.strip() or None,
                        slice_range=slice_range)
        if not job.target:
            if box_ras is None and not points_ras:
                raise MedSAMAgentError("type a target, or draw a box or place points on the red view")
            job.box_ras, job.points_ras = box_ras, list(points_ras)
            if box_ras is not None:
                job.key_slice = box_from_ras(self.volume.geometry, SlicePlane.for_view(self.volume.geometry, view), *box_ras).first
        segment_id = None if len(job.targets) > 1 else self.segment_id
        return self.logic.prepare(SEGMENT, self.volume_node, self.segmentation_node, segment_id, job)

    def prepare_propagate(self, red_slice_node, slice_range=None) -> PreparedRun:
        """Propagate what the segment holds on the slice the red view shows through the
        volume (drawn there with the brush, or left by a run), or through `slice_range`."""
        if not self.segment_id:
            raise MedSAMAgentError("nothing to propagate: paint the object on the red view's slice with the brush first")
        view, key_slice = self._shown(red_slice_node)
        return self.logic.prepare(PROPAGATE, self.volume_node, self.segmentation_node, self.segment_id,
                                  self._job(view=view, key_slice=key_slice, slice_range=slice_range))

    def prepare_rerun(self) -> PreparedRun:
        """Propagate again from the last run's seeds, keeping every slice edited since."""
        if self.volume_node is None or not self.segment_id:
            raise MedSAMAgentError("nothing to re-run: segment first, then edit slices and re-run")
        return self.logic.prepare(RERUN, self.volume_node, self.segmentation_node, self.segment_id, self._job())

    def slices_of(self, points_ras, red_slice_node) -> list[int]:
        """The slices, along the red view, that points lie on."""
        view, _ = self._shown(red_slice_node)
        plane = SlicePlane.for_view(self.volume.geometry, view)
        return [point_from_ras(self.volume.geometry, plane, ras, positive)[0] for ras, positive in points_ras]

    def _shown(self, red_slice_node) -> tuple[str, int]:
        if self.volume_node is None:
            raise MedSAMAgentError("open a volume first")
        return slice_shown(self.volume_node, red_slice_node)

    def _job(self, **fields) -> SegmentationJob:
        engine = self.engine
        return SegmentationJob(segmenter=engine.segmenter, device=engine.device, runtime=engine.runtime, policy=engine.policy,
                               agent_model=engine.agent_model, endpoint_url=engine.endpoint_url, server_url=engine.server_url,
                               server_key=engine.server_key, **fields)

    def compute(self, prepared: PreparedRun, progress, cancel):
        return self.logic.compute(prepared, progress, cancel)

    def apply(self, prepared: PreparedRun, outcomes) -> RunReport:
        report = self.logic.apply(prepared, outcomes)
        self.segment_id = report.segment_id
        engine = self.engine
        agent = agent_name(bool(engine.server_url), engine.policy, engine.agent_model) if prepared.job.target else None
        self.provenance = Provenance(engine.segmenter, agent, edited=prepared.mode != SEGMENT or bool(report.locked_slices))
        self.segmentation_node.CreateClosedSurfaceRepresentation()  # the segments in the 3D view
        return report

    def undo(self) -> None:
        self.logic.undo()
        self.note_edit()  # what the segments hold now is no longer known to be the models' alone
        segmentation = self.segmentation_node.GetSegmentation() if self.segmentation_node is not None else None
        if segmentation is not None and segmentation.GetSegment(self.segment_id or "") is None:
            self.segment_id = None

    def segment_to_edit(self, name: str) -> str:
        """The segment the brush paints into: the last run's, or a new empty one (to draw
        on a slice and propagate, or to lock slices before a run)."""
        if self.segmentation_node is None:
            raise MedSAMAgentError("open a volume first")
        if not self.segment_id:
            style = segment_style(name.strip() or "Segment")
            self.segment_id = self.segmentation_node.GetSegmentation().AddEmptySegment("", style.name, list(style.colour))
        return self.segment_id

    def note_edit(self) -> None:
        """A hand edit: what is saved from now on is no longer the models' alone."""
        if self.provenance is not None:
            self.provenance = dataclasses.replace(self.provenance, edited=True)

    # -- saving --------------------------------------------------------------------------
    def segment_count(self) -> int:
        return self.segmentation_node.GetSegmentation().GetNumberOfSegments() if self.segmentation_node is not None else 0

    def save(self, folder: Path, suffix: str = ".seg.nrrd") -> Path:
        """Every segment, on the volume's grid, as the command line writes them."""
        if not self.segment_count():
            raise MedSAMAgentError("there is no segment to save yet: segment first")
        segmentation = self.segmentation_node.GetSegmentation()
        segments = []
        for index in range(segmentation.GetNumberOfSegments()):
            segment_id = segmentation.GetNthSegmentID(index)
            mask = segment_array(self.segmentation_node, segment_id, self.volume_node)
            segments.append((mask, segment_style(segmentation.GetSegment(segment_id).GetName())))
        folder.mkdir(parents=True, exist_ok=True)
        stem = self.volume_name.split(".")[0] or "volume"
        provenance = self.provenance or Provenance(self.engine.segmenter, None, edited=True)  # drawn by hand only
        return write_segments(segments, self.volume, folder / f"{stem}{suffix}", provenance)[0]

    def save_record(self, folder: Path) -> Path:
        """The agent's record of the last run (its turns, pictures and outcome) in a new
        folder inside `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        return Path(self.logic.save_last_run(folder))
