"""The volumes a session may open from the server's disk: those under `--data DIR`, and
nothing outside it (no `..`, no symbolic link leading out)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputImageError
from ..io.volumes import VOLUME_SUFFIXES


class DataFolder:
    def __init__(self, root: Path | None):
        self.root = Path(root).resolve() if root else None

    def entries(self) -> list[str]:
        """Volume files and folders (DICOM series) under the root, as paths relative to it."""
        if self.root is None:
            return []
        found = []
        for path in sorted(self.root.rglob("*")):
            if not path.resolve().is_relative_to(self.root):
                continue  # a link leading out of the folder
            if path.is_file() and path.name.lower().endswith((*VOLUME_SUFFIXES, ".dcm")) and not path.name.lower().endswith(".seg.nrrd"):
                found.append(path.relative_to(self.root).as_posix())
            elif path.is_dir() and any(child.is_file() for child in path.iterdir()):
                found.append(path.relative_to(self.root).as_posix() + "/")
        return found

    def resolve(self, relative: str) -> Path:
        """The file or folder named by `relative`, refused unless it lies inside the root."""
        if self.root is None:
            raise InputImageError("this workstation was started without --data: upload a volume instead")
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root) or not path.exists():
            raise InputImageError(f"{relative!r} is not a volume in the data folder")
        return path
