"""The page's save buttons: the segments as `.seg.nrrd` or, for a DICOM input, as DICOM
SEG; the agent's record of the last run as a folder. Each goes into the session's output
folder on the server, and the page's Download button sends the last one saved (a folder
as a .zip)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from ..errors import MedSAMAgentError
from .page_state import count, say
from .workspace import Workspace

STATE = {"saved_name": "", "saved_path": "", "saved_serial": 0}


class SaveActions:
    def __init__(self, server, workspace: Workspace, output: Path):
        self.server, self.state = server, server.state
        self.workspace = workspace
        self.output = output
        self.state.update(STATE)

    def save_seg_nrrd(self) -> None:
        self._save(lambda: self.workspace.save(self.output, ".seg.nrrd"))

    def save_dicom_seg(self) -> None:
        self._save(lambda: self.workspace.save(self.output, ".dcm"))

    def save_record(self) -> None:
        self._save(lambda: self.workspace.save_record(self.output))

    def _save(self, write) -> None:
        try:
            path = write()
        except MedSAMAgentError as error:
            say(self.state, str(error), "error")
            return
        self.state.update({"saved_name": path.name + (".zip" if path.is_dir() else ""), "saved_path": str(path)})
        count(self.state, "saved_serial")
        say(self.state, f"saved {path.name}")

    def download(self):
        path = Path(self.state.saved_path)
        return self.server.protocol.addAttachment(zipped(path) if path.is_dir() else path.read_bytes())


def zipped(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path(folder.name) / path.relative_to(folder))
    return buffer.getvalue()
