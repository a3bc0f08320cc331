"""Files that appear whole or not at all: written beside their place under a temporary
name and renamed onto it only when complete, so that a reader (or a crash) never sees half
a file and a failed write leaves the old file as it was."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_atomically(path: Path, suffix: str = "", mode: int | None = None) -> Iterator[Path]:
    """A temporary path beside `path` (ending in `suffix`, for writers that choose the
    format by it) to write; renamed onto `path` when the block succeeds, removed when it
    fails. `mode`: the file's permissions (a new temporary file is readable by its owner only)."""
    path = Path(path)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{suffix}", dir=path.parent)
    os.close(handle)
    temp = Path(name)
    try:
        yield temp
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: Path, data: bytes, mode: int | None = None) -> None:
    with replaced_atomically(path, mode=mode) as temp:
        temp.write_bytes(data)
