"""An on-disk cache of converted models, one folder per key.

Each entry is written into a temporary folder beside its final place and renamed into
place only when complete, so a crash or a concurrent writer never leaves a half entry
under the final name. A manifest lists every file with its SHA-256 and the facts the
entry was built from; an entry whose files do not match their manifest (truncated,
edited, partly deleted) or whose facts differ counts as absent and is rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from ..checkpoints import sha256

CACHE_ENVIRONMENT_VARIABLE = "MEDSAM_AGENT_CACHE"
MANIFEST = "manifest.json"


def cache_root() -> Path:
    """`$MEDSAM_AGENT_CACHE`, else the platform's per-user cache folder + medsam-agent."""
    override = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "medsam-agent"


class CacheEntry:
    """The folder for `key` under `root`, valid only for the given `facts`."""

    def __init__(self, root: Path, key: str, facts: Mapping[str, str]):
        self.root = root
        self.folder = root / key
        self.facts = dict(facts)

    def valid(self) -> bool:
        try:
            manifest = json.loads((self.folder / MANIFEST).read_text())
            if manifest.get("facts") != self.facts:
                return False
            files = manifest["files"]
            return bool(files) and all(sha256(self.folder / name) == digest for name, digest in files.items())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False

    def write(self, produce: Callable[[Path], None]) -> Path:
        """Build the entry with `produce(folder)` in a temporary folder, then put it in place
        (replacing an invalid one). Returns the entry's folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}.", dir=self.root))
        try:
            produce(staging)
            files = {path.name: sha256(path) for path in sorted(staging.iterdir()) if path.is_file()}
            (staging / MANIFEST).write_text(json.dumps({"facts": self.facts, "files": files}, indent=1))
            if self.folder.exists() and not self.valid():
                shutil.rmtree(self.folder, ignore_errors=True)
            try:
                os.replace(staging, self.folder)
            except OSError:
                if not self.valid():  # not a concurrent writer's complete entry: a real failure
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.folder
