"""What one browser session's page does: open a volume (data folder or upload), move the
red view, place prompts on it (a box, positive and negative points), edit with the brush,
eraser and scissors; the runs (`run_actions`) and the saving (`save_actions`) have their
own modules. Every handler changes the session's trame state, which the page shows."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import MedSAMAgentError
from .data_folder import DataFolder
from .object_slices import ObjectSlices
from .page_state import count, say
from .run_actions import RunActions
from .save_actions import SaveActions
from .uploads import UploadFolder
from .workspace import Workspace

PLACING = ("box", "positive", "negative")  # what clicks on the red view place


class SessionActions:
    def __init__(self, server, workspace: Workspace, data: DataFolder, output: Path):
        self.server, self.state = server, server.state
        self.workspace = workspace
        self.data = data
        self.uploads = UploadFolder()
        self.uploaded: list[dict] = []
        self.red_view = self.box_drawing = self.points = self.tools = None  # given by `attach_red_view`
        self.state.update({
            "volumes": data.entries(), "volume_choice": None, "volume_name": "", "volume_serial": 0, "is_dicom": False,
            "red_slice": 0, "red_slice_max": 0, "red_shown": -1, "red_geometry": "",
            "targets": "", "segment_name": "", "placing": None, "placing_on": None,
            "box_text": "", "box_serial": 0, "points_text": "", "points_serial": 0,
            "tool": None, "tool_on": None, "edit_serial": 0,
            "message": "", "message_kind": "", "message_serial": 0,
        })
        self.object_slices = ObjectSlices(self.state)
        self.runs = RunActions(server, workspace, self._prepare_segment, self._prepare_propagate)
        self.saving = SaveActions(server, workspace, output)
        self.state.change("placing")(self._on_placing)
        self.state.change("tool")(self._on_tool)
        self.state.change("red_slice")(self._on_red_slice)

    def attach_red_view(self, red_view, box_drawing, points, tools) -> None:
        """The red view and what draws on it: `box_drawing` (`BoxDrawing`), `points`
        (`PointPlacing`) and `tools` (`SegmentTools`)."""
        self.red_view, self.box_drawing, self.points, self.tools = red_view, box_drawing, points, tools
        red_view.interactor().AddObserver("WindowResizeEvent", lambda *_: self._publish_geometry())

    # -- volumes -----------------------------------------------------------------------------
    def open_chosen(self) -> None:
        try:
            path = self.data.resolve(self.state.volume_choice or "")
            self._open(path, path.name)
        except MedSAMAgentError as error:
            say(self.state, str(error), "error")

    async def receive_upload(self, files: list[dict]) -> None:
        """Called with the uploaded files, then once with none (the end of the upload)."""
        from trame.app.file_upload import ClientFile

        if files:
            self.uploaded.extend(files)
            return
        received, self.uploaded = [ClientFile(file) for file in self.uploaded], []
        with self.state:
            try:
                with self.uploads.receive([(file.name, file.content) for file in received]) as (path, name):
                    self._open(path, name)
            except MedSAMAgentError as error:
                say(self.state, str(error), "error")
            finally:
                self.state.busy = False

    def _open(self, path: Path, name: str) -> None:
        notes = self.workspace.open(path, name)
        self.box_drawing.clear()
        self.points.clear()
        self.object_slices.clear()
        self.tools.use(None, None, None, None)
        view, index = self.workspace.key_slice_of(self.red_view)
        self.state.update({
            "volume_name": self.workspace.volume_name, "is_dicom": self.workspace.volume.dicom is not None,
            "red_slice_max": self.workspace.slice_count(view) - 1, "red_slice": index, "red_shown": index, "box_text": "", "points_text": "",
            "summary": "", "segment_count": 0, "turns": [], "saved_name": "", "saved_path": "", "run_state": "idle", "progress": 0,
            "progress_text": "", "tool": None, "tool_on": None, "placing": None,
        })
        count(self.state, "volume_serial")
        say(self.state, "; ".join(notes) if notes else f"opened {name}")
        self._publish_geometry()

    def _on_red_slice(self, red_slice, **_) -> None:
        if self.workspace.volume_node is None or not str(red_slice).strip().lstrip("-").isdigit():
            return  # nothing open, or a number still being typed
        self.workspace.show_slice(self.red_view, int(red_slice))
        self.state.red_shown = self.workspace.key_slice_of(self.red_view)[1]
        self._publish_geometry()

    def _publish_geometry(self) -> None:
        """The red view's pixel-to-patient mapping and size, for a page script (and the
        tests) to place the mouse on anatomy."""
        if self.red_view is None:
            return
        width, height = self.red_view.render_window().GetSize()
        xy_to_ras = self.red_view.get_view_node().GetXYToRAS()
        matrix = [[xy_to_ras.GetElement(row, column) for column in range(4)] for row in range(4)]
        with self.state:
            self.state.red_geometry = json.dumps({"xy_to_ras": matrix, "size": [width, height]})

    # -- prompts -----------------------------------------------------------------------------
    def _on_placing(self, placing, **_) -> None:
        if self.box_drawing is None:
            return
        if placing:
            self.state.tool = None
        # The one placing ends before the other starts: both use the scene's place mode.
        self.points.place(placing if placing in ("positive", "negative") else None)
        self.box_drawing.set_enabled(placing == "box")
        self.state.placing_on = placing if placing in PLACING else None  # what the red view does now, for the page to show

    def on_box(self, corners) -> None:
        """A box placed: the red view goes back to moving the image."""
        with self.state:
            self.state.placing = None
            self.state.box_text = "box " + " ".join(f"({r:.1f}, {a:.1f}, {s:.1f})" for r, a, s in corners) + " mm RAS"
            count(self.state, "box_serial")

    def on_points(self) -> None:
        with self.state:
            placed = self.points.points_ras()
            try:
                self.state.points_text = points_text(placed, self.workspace.slices_of(placed, self.red_view.get_view_node()))
            except MedSAMAgentError as error:  # a point off the volume's slices (the run would refuse it too)
                self.state.points_text = f"{len(placed)} points"
                say(self.state, str(error), "error")
            count(self.state, "points_serial")

    def object_end_here(self, end: str) -> None:
        """The red view's slice is the object's `end` ('first' or 'last')."""
        if self.workspace.volume_node is not None:
            self.object_slices.set_here(end, self.state.red_shown)

    def clear_prompts(self) -> None:
        self.box_drawing.clear()
        self.points.clear()
        self.object_slices.clear()
        self.state.box_text = ""

    def _prepare_segment(self):
        return self.workspace.prepare(self.state.targets, self.box_drawing.corners(), self.points.points_ras(), self.state.segment_name,
                                      self.red_view.get_view_node(), self.object_slices.slice_range())

    def _prepare_propagate(self):
        return self.workspace.prepare_propagate(self.red_view.get_view_node(), self.object_slices.slice_range())

    # -- brush, eraser, scissors -------------------------------------------------------------
    def _on_tool(self, tool, **_) -> None:
        if self.tools is None:
            return
        if tool:
            self.state.placing = None
        workspace = self.workspace
        try:
            segment_id = workspace.segment_to_edit(self.state.segment_name) if tool == "paint" else workspace.segment_id
            self.tools.use(tool or None, workspace.segmentation_node, workspace.volume_node, segment_id)
        except MedSAMAgentError as error:
            self.state.tool = None
            say(self.state, str(error), "error")
        self.state.tool_on = self.tools.tool  # what the views do now, for the page to show
        self.state.segment_count = workspace.segment_count()

    def on_edit(self) -> None:
        with self.state:
            self.workspace.note_edit()
            count(self.state, "edit_serial")


def points_text(points, slices: list[int]) -> str:
    """How many points of each kind lie on which slices: '2 positive (slices 15, 17), 1
    negative (slice 17)'."""
    parts = []
    for kind, positive in (("positive", True), ("negative", False)):
        on = [index for index, (_, sign) in zip(slices, points) if sign == positive]
        if on:
            listed = sorted(set(on))
            parts.append(f"{len(on)} {kind} (slice{'s' if len(listed) > 1 else ''} {', '.join(map(str, listed))})")
    return ", ".join(parts)
