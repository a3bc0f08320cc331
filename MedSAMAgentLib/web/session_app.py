"""One browser session's process: a trame server on localhost (the gateway forwards the
page to it) holding its own MRML scene, views and `Workspace`. It exits when its page has
been closed for `--idle-exit` seconds, which frees its memory.

Model work runs on a worker thread; the page's thread keeps answering (Cancel, views)."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import os
import tempfile
import threading
from pathlib import Path

from ..errors import Cancelled, MedSAMAgentError
from ..remote import SERVER_KEY_ENV
from .data_folder import DataFolder
from .workspace import EngineSettings, Workspace


class SessionActions:
    def __init__(self, server, workspace: Workspace, data: DataFolder, output: Path):
        self.server, self.state = server, server.state
        self.workspace = workspace
        self.data = data
        self.output = output
        self.cancel_requested = threading.Event()
        self._tasks: set[asyncio.Future] = set()  # runs under way (kept, so that they are not collected)
        self.uploaded: list[dict] = []
        self.box = None
        self.red_view = None
        self.drawing = None
        # `*_serial` values count what the session has done; the page shows them, and the
        # browser tests wait on them.
        self.state.update({
            "volumes": data.entries(), "volume_choice": None, "volume_name": "", "volume_serial": 0, "is_dicom": False,
            "red_slice": 0, "red_slice_max": 0, "red_shown": -1, "red_geometry": "",
            "targets": "", "segment_name": "", "drawing": False, "drawing_on": False, "box_text": "", "box_serial": 0,
            "tool": None, "tool_on": None, "edit_serial": 0,
            "busy": False, "run_state": "idle", "run_serial": 0, "progress": 0, "progress_text": "", "summary": "",
            "segment_count": 0, "saved_name": "", "saved_path": "", "saved_serial": 0,
            "message": "", "message_kind": "", "message_serial": 0,
        })
        self.state.change("drawing")(self._on_drawing)
        self.state.change("tool")(self._on_tool)
        self.state.change("red_slice")(self._on_red_slice)

    def attach_red_view(self, red_view, drawing, brush) -> None:
        self.red_view, self.drawing, self.brush = red_view, drawing, brush
        red_view.interactor().AddObserver("WindowResizeEvent", lambda *_: self._publish_geometry())

    # -- messages --------------------------------------------------------------------------
    def _say(self, text: str, kind: str = "info") -> None:
        self.state.message, self.state.message_kind = text, kind
        self.state.message_serial += 1

    # -- volumes -----------------------------------------------------------------------------
    def open_chosen(self) -> None:
        try:
            path = self.data.resolve(self.state.volume_choice or "")
            self._open(path, path.name.rstrip("/") or path.parent.name)
        except MedSAMAgentError as error:
            self._say(str(error), "error")

    async def receive_upload(self, files: list[dict]) -> None:
        """Called with the uploaded files, then once with none (the end of the upload)."""
        from trame.app.file_upload import ClientFile

        if files:
            self.uploaded.extend(files)
            return
        received, self.uploaded = [ClientFile(file) for file in self.uploaded], []
        with self.state:
            try:
                with tempfile.TemporaryDirectory(prefix="medsam-agent-upload-") as folder:
                    for file in received:
                        (Path(folder) / Path(file.name).name).write_bytes(file.content)
                    volume = next((file.name for file in received if not file.name.lower().endswith((".raw", ".zraw"))), None)
                    if volume is None:
                        raise MedSAMAgentError("the upload holds no volume file (NIfTI, NRRD or MetaImage)")
                    self._open(Path(folder) / Path(volume).name, Path(volume).name)
            except MedSAMAgentError as error:
                self._say(str(error), "error")
            finally:
                self.state.busy = False

    def _open(self, path: Path, name: str) -> None:
        notes = self.workspace.open(path, name)
        self.box = None
        if self.drawing is not None:
            self.drawing.clear()
        self.brush.use(None, None, None, None)
        view, index = self.workspace.key_slice_of(self.red_view)
        count = self.workspace.slice_count(view)
        self.state.update({
            "volume_name": self.workspace.volume_name, "is_dicom": self.workspace.volume.dicom is not None,
            "red_slice_max": count - 1, "red_slice": index, "red_shown": index, "box_text": "", "summary": "", "segment_count": 0,
            "saved_name": "", "saved_path": "", "run_state": "idle", "progress": 0, "progress_text": "",
            "tool": None, "tool_on": None, "drawing": False,
        })
        self.state.volume_serial += 1
        self._say("; ".join(notes) if notes else f"opened {name}")
        self._publish_geometry()

    def _on_red_slice(self, red_slice, **_) -> None:
        if self.workspace.volume_node is None or not str(red_slice).strip().lstrip("-").isdigit():
            return  # nothing open, or a number still being typed
        self.workspace.show_slice(self.red_view, int(red_slice))
        self.state.red_shown = self.workspace.key_slice_of(self.red_view)[1]
        self._publish_geometry()

    # -- the box -----------------------------------------------------------------------------
    def _on_drawing(self, drawing, **_) -> None:
        if drawing:
            self.state.tool = None
        if self.drawing is not None:
            self.drawing.set_enabled(bool(drawing))
            self.state.drawing_on = self.drawing.enabled  # what the red view does now, for the page to show

    # -- brush and eraser --------------------------------------------------------------------
    def _on_tool(self, tool, **_) -> None:
        if tool:
            self.state.drawing = False
        workspace = self.workspace
        try:
            self.brush.use(tool or None, workspace.segmentation_node, workspace.volume_node, workspace.segment_id)
        except MedSAMAgentError as error:
            self.state.tool = None
            self._say(str(error), "error")
        self.state.tool_on = self.brush.tool  # what the views do now, for the page to show

    def on_edit(self) -> None:
        with self.state:
            self.state.edit_serial += 1

    def on_box(self, corners) -> None:
        with self.state:
            self.box = corners
            self.state.box_text = "box " + " ".join(f"({r:.1f}, {a:.1f}, {s:.1f})" for r, a, s in corners) + " mm RAS"
            self.state.box_serial += 1

    def clear_box(self) -> None:
        self.box = None
        self.drawing.clear()
        self.state.box_text = ""

    def _publish_geometry(self) -> None:
        """The red view's pixel-to-patient mapping and size, for a page script (and the
        tests) to place the mouse on anatomy."""
        if self.red_view is None:
            return
        width, height = self.red_view.render_window().GetSize()
        with self.state:
            self.state.red_geometry = json.dumps({"xy_to_ras": self.drawing.xy_to_ras().tolist(), "size": [width, height]})

    # -- runs --------------------------------------------------------------------------------
    # The page's messages are handled one after the other: a run is a task of its own, so
    # that Cancel (and the views) are handled while it runs.
    def segment(self) -> None:
        self._tasks.add(asyncio.ensure_future(self._run(lambda: self.workspace.prepare(
            self.state.targets, self.box, self.state.segment_name, self.red_view.get_view_node()))))

    def rerun(self) -> None:
        self._tasks.add(asyncio.ensure_future(self._run(self.workspace.prepare_rerun)))

    async def _run(self, prepare) -> None:
        try:
            with self.state:
                await self._run_now(prepare)
        finally:
            self._tasks.discard(asyncio.current_task())

    async def _run_now(self, prepare) -> None:
        self.state.tool = None  # the brush is put down while a run writes
        try:
            prepared = prepare()
        except MedSAMAgentError as error:
            self._say(str(error), "error")
            return
        self.cancel_requested.clear()
        loop = asyncio.get_running_loop()
        with self.state:
            self.state.update({"busy": True, "run_state": "running", "progress": 0, "progress_text": "starting", "summary": ""})
            self._say("segmenting")

        def progress(text: str, done: int, total: int) -> None:
            loop.call_soon_threadsafe(self._show_progress, text, done, total)

        with self.state:
            try:
                outcomes = await loop.run_in_executor(None, self.workspace.compute, prepared, progress, self.cancel_requested.is_set)
                report = self.workspace.apply(prepared, outcomes)
            except Cancelled as error:
                self._end_run("cancelled", str(error), "info")
            except MedSAMAgentError as error:
                self._end_run("failed", str(error), "error")
            else:
                self.state.summary = report.summary
                self._end_run("done", "; ".join(report.failed) or "done", "error" if report.failed else "info")

    def _show_progress(self, text: str, done: int, total: int) -> None:
        if self.state.run_state != "running":
            return
        with self.state:
            self.state.progress = 100 * done / total if total else 0
            self.state.progress_text = text

    def _end_run(self, run_state: str, message: str, kind: str) -> None:
        self.state.update({"busy": False, "run_state": run_state, "segment_count": self.workspace.segment_count()})
        self.state.progress_text = message
        self.state.run_serial += 1
        self._say(message, kind)

    def cancel(self) -> None:
        self.cancel_requested.set()
        self.state.progress_text = "cancelling"

    def undo(self) -> None:
        try:
            self.workspace.undo()
            self._say("the last run was taken back")
        except MedSAMAgentError as error:
            self._say(str(error), "error")
        self.state.segment_count = self.workspace.segment_count()

    # -- saving ------------------------------------------------------------------------------
    def save_seg_nrrd(self) -> None:
        self._save(".seg.nrrd")

    def save_dicom_seg(self) -> None:
        self._save(".dcm")

    def _save(self, suffix: str) -> None:
        try:
            path = self.workspace.save(self.output, suffix)
        except MedSAMAgentError as error:
            self._say(str(error), "error")
            return
        self.state.update({"saved_name": path.name, "saved_path": str(path)})
        self.state.saved_serial += 1
        self._say(f"saved {path.name}")

    def download(self):
        return self.server.protocol.addAttachment(Path(self.state.saved_path).read_bytes())


FOUR_VIEWS = "red yellow / green 3D"


def four_views() -> dict:
    """Red and yellow above green and 3D, red first in the page (where the box is drawn)."""
    from trame_slicer.views import Layout, LayoutDirection
    from trame_slicer.views import ViewLayoutDefinition as Views

    rows = [Layout(LayoutDirection.Horizontal, pair) for pair in ([Views.axial_view(), Views.sagittal_view()],
                                                                  [Views.coronal_view(), Views.threed_view()])]
    return {FOUR_VIEWS: Layout(LayoutDirection.Vertical, rows)}


def build_session(server, options: argparse.Namespace) -> SessionActions:
    from trame_slicer import module as trame_slicer_module
    from trame_slicer.core import LayoutManager, SlicerApp
    from trame_slicer.rca_view import register_rca_factories

    from .box_drawing import BoxDrawing
    from .brush import Brush
    from .page import build_page

    server.enable_module(trame_slicer_module)
    slicer_app = SlicerApp()
    register_rca_factories(slicer_app.view_manager, server)
    layout_manager = LayoutManager(slicer_app.scene, slicer_app.view_manager, server)
    layout_manager.register_layout_dict(four_views())
    layout_manager.set_layout(FOUR_VIEWS)
    engine = EngineSettings(segmenter=options.segmenter, device=options.device, runtime=options.runtime, server_url=options.server,
                            server_key=os.environ.get(SERVER_KEY_ENV) or None)
    actions = SessionActions(server, Workspace(slicer_app, engine), DataFolder(options.data), options.output)
    red_view = slicer_app.view_manager.get_view("Red")
    actions.attach_red_view(red_view, BoxDrawing(red_view, slicer_app.scene, actions.on_box), Brush(slicer_app, actions.on_edit))
    server.state.trame__title = "MedSAM-Agent"
    build_page(server, actions, layout_manager)
    return actions


def load_model_libraries() -> None:
    """Load torch and what it loads (triton, with its own LLVM) before VTK renders through
    Mesa (whose LLVM is another): loaded the other way round, the process crashes."""
    import torchvision.ops  # noqa: F401  (torch, then triton)

    import MedSAMAgentLib.engine.local  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one browser session of medsam-agent web (started by the gateway)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--segmenter", default="litemedsam")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--server")
    parser.add_argument("--idle-exit", type=int, default=30, help="seconds without a page before the process exits")
    options = parser.parse_args(argv)
    faulthandler.enable()  # a crash in VTK or a runtime leaves its stack in the workstation's log
    if not options.server:
        load_model_libraries()
    from trame.app import get_server

    server = get_server(client_type="vue3")
    build_session(server, options)
    print("ready", flush=True)
    server.start(host="127.0.0.1", port=options.port, open_browser=False, show_connection_info=False, disable_logging=True,
                 timeout=options.idle_exit)


if __name__ == "__main__":
    main()
