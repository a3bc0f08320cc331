"""The server's volume store: uploaded volumes named by their SHA-256, on disk and in a
small memory cache, with a size cap and least-recently-used eviction.

Several server processes may share one store folder: uploads live in the folder (any
process may take the next part), every file appears by an atomic rename, a volume that
another process evicted is simply missing (the client uploads it again), and a file is
checked against its name whenever it is read from disk. Files and folders are readable by
the server's own user only.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from pathlib import Path

from ..errors import MedSAMAgentError
from ..io.atomic import write_bytes_atomically
from ..io.volumes import Volume
from ..remote.wire import CorruptDataError, decode_volume

MARKER = ".medsam-agent-store"
UPLOAD_LIFETIME_SECONDS = 3600
PRIVATE_FOLDER, PRIVATE_FILE = 0o700, 0o600


class StoreError(MedSAMAgentError):
    """The store folder cannot be used."""


class UnknownUpload(MedSAMAgentError):
    """An upload id the store does not know (finished, expired or never begun)."""


class VolumeStore:
    def __init__(self, folder: Path, max_bytes: int, max_voxel_bytes: int, memory_volumes: int = 2):
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.max_voxel_bytes = max_voxel_bytes
        self._memory_volumes = memory_volumes
        self._memory: OrderedDict[str, Volume] = OrderedDict()
        self._lock = threading.Lock()
        self._open()

    def _open(self) -> None:
        if self.folder.exists() and any(self.folder.iterdir()) and not (self.folder / MARKER).exists():
            raise StoreError(f"{self.folder} is not empty and is not a MedSAM-Agent store; give an empty or new folder")
        for folder in (self.folder, self.volumes_folder, self.uploads_folder):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, PRIVATE_FOLDER)
        (self.folder / MARKER).touch(mode=PRIVATE_FILE)

    @property
    def volumes_folder(self) -> Path:
        return self.folder / "volumes"

    @property
    def uploads_folder(self) -> Path:
        return self.folder / "uploads"

    def _path(self, digest: str) -> Path:
        return self.volumes_folder / f"{digest}.vol"

    # -- reading ----------------------------------------------------------------------
    def has(self, digest: str) -> bool:
        return self._path(digest).is_file()

    def load(self, digest: str) -> Volume | None:
        """The stored volume, or None when it is not here (never uploaded, evicted, or
        found damaged and removed). The file decides: a volume evicted by another process
        sharing the store is gone from memory too."""
        path = self._path(digest)
        try:
            os.utime(path)  # most recently used
        except FileNotFoundError:
            with self._lock:
                self._memory.pop(digest, None)
            return None
        with self._lock:
            if digest in self._memory:
                self._memory.move_to_end(digest)
                return self._memory[digest]
        try:
            volume = decode_volume(path.read_bytes(), digest, self.max_voxel_bytes)
        except FileNotFoundError:
            return None
        except MedSAMAgentError:
            path.unlink(missing_ok=True)  # damaged on disk: the client will send it again
            return None
        self._remember(digest, volume)
        return volume

    def _remember(self, digest: str, volume: Volume) -> None:
        with self._lock:
            self._memory[digest] = volume
            while len(self._memory) > self._memory_volumes:
                self._memory.popitem(last=False)

    # -- uploading --------------------------------------------------------------------
    def begin_upload(self, digest: str, size: int) -> str:
        self._forget_old_uploads()
        upload_id = secrets.token_hex(16)
        folder = self.uploads_folder / upload_id
        folder.mkdir(mode=PRIVATE_FOLDER)
        write_bytes_atomically(folder / "upload.json", json.dumps({"volume": digest, "size": size}).encode(), PRIVATE_FILE)
        return upload_id

    def write_part(self, upload_id: str, part: int, data: bytes) -> None:
        folder, announced = self._upload(upload_id)
        others = sum(path.stat().st_size for path in folder.glob("part-*") if path.name != _part_name(part))
        if others + len(data) > announced["size"]:
            raise CorruptDataError(f"the upload sends more than the {announced['size']} bytes it announced")
        write_bytes_atomically(folder / _part_name(part), data, PRIVATE_FILE)  # a part sent again replaces itself

    def complete(self, upload_id: str) -> str:
        """Check the uploaded volume against its digest and store it; the upload ends
        either way."""
        folder, announced = self._upload(upload_id)
        digest, size = announced["volume"], announced["size"]
        try:
            blob = b"".join(path.read_bytes() for path in sorted(folder.glob("part-*")))
            if len(blob) != size:
                raise CorruptDataError(f"the upload is truncated: {len(blob)} of the {size} bytes announced arrived")
            volume = decode_volume(blob, digest, self.max_voxel_bytes)
            write_bytes_atomically(self._path(digest), blob, PRIVATE_FILE)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self._remember(digest, volume)
        self.evict(keep=digest)
        return digest

    def _upload(self, upload_id: str) -> tuple[Path, dict]:
        folder = self.uploads_folder / upload_id
        try:
            return folder, json.loads((folder / "upload.json").read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            raise UnknownUpload(f"upload {upload_id} is not open on this server") from None

    def _forget_old_uploads(self) -> None:
        limit = time.time() - UPLOAD_LIFETIME_SECONDS
        for folder in self.uploads_folder.iterdir():
            try:
                if folder.stat().st_mtime < limit:
                    shutil.rmtree(folder, ignore_errors=True)
            except FileNotFoundError:
                pass

    # -- size -------------------------------------------------------------------------
    def usage(self) -> int:
        return sum(size for _, size, _ in self._stored())

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove the least recently used volumes until the store fits its cap."""
        stored = sorted(self._stored(), key=lambda entry: entry[2])
        total = sum(size for _, size, _ in stored)
        evicted = []
        for digest, size, _ in stored:
            if total <= self.max_bytes:
                break
            if digest == keep:
                continue
            self._path(digest).unlink(missing_ok=True)
            total -= size
            evicted.append(digest)
        with self._lock:
            for digest in evicted:
                self._memory.pop(digest, None)
        return evicted

    def _stored(self) -> list[tuple[str, int, float]]:
        entries = []
        for path in self.volumes_folder.glob("*.vol"):
            try:
                status = path.stat()
            except FileNotFoundError:
                continue
            entries.append((path.stem, status.st_size, status.st_mtime))
        return entries


def purge_store(folder: Path) -> tuple[int, int]:
    """Delete every stored volume and upload in a store folder: (files, bytes) removed."""
    folder = Path(folder)
    if not (folder / MARKER).exists():
        raise StoreError(f"{folder} is not a MedSAM-Agent store (no {MARKER} in it); nothing was deleted")
    files = removed = 0
    for sub in ("volumes", "uploads"):
        for path in sorted((folder / sub).rglob("*"), reverse=True):
            if path.is_file():
                removed += path.stat().st_size
                files += 1
                path.unlink(missing_ok=True)
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
    return files, removed


def _part_name(part: int) -> str:
    return f"part-{part:06d}"
