"""Uploaded files: written to a folder of their own that is kept while the volume they
make is open (a DICOM SEG re-reads the series it references), and what to open of them: a
volume file (NIfTI, NRRD, MetaImage, its data file beside it), else the folder as a DICOM
series."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..io.volumes import VOLUME_SUFFIXES

DICOM_UPLOAD_NAME = "dicom-series"  # what an uploaded series is called in the page and the saved file names


class UploadFolder:
    def __init__(self):
        self._kept: tempfile.TemporaryDirectory | None = None

    @contextlib.contextmanager
    def receive(self, files: list[tuple[str, bytes]]) -> Iterator[tuple[Path, str]]:
        """Write `files` (name, content) into a new folder and give what to open of them,
        and its name.
        If the block raises, the new folder goes and the one kept before stays; else the
        new one is kept instead."""
        folder = tempfile.TemporaryDirectory(prefix="medsam-agent-upload-")
        try:
            names = [Path(name).name for name, _ in files]
            for name, (_, content) in zip(names, files):
                (Path(folder.name) / name).write_bytes(content)
            yield what_to_open(Path(folder.name), names)
        except BaseException:
            folder.cleanup()
            raise
        if self._kept is not None:
            self._kept.cleanup()
        self._kept = folder


def what_to_open(folder: Path, names: list[str]) -> tuple[Path, str]:
    volume = next((name for name in names if name.lower().endswith(VOLUME_SUFFIXES)), None)
    return (folder / volume, volume) if volume is not None else (folder, DICOM_UPLOAD_NAME)
