"""What `models` and `doctor` report for each catalogue entry: here or not, where, how big,
and its checksum. Nothing is downloaded and no model code is imported."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from .catalog import CATALOG, WeightsSpec
from .locate import cached_file, cached_snapshot


@dataclass(frozen=True)
class WeightsStatus:
    spec: WeightsSpec
    path: Path | None  # the file or model folder; None when absent
    size_bytes: int | None
    sha256: str | None  # for one file; a model folder's files carry the hub's own checksums
    problem: str = ""  # why present weights cannot be used, or why the package's are missing

    @property
    def present(self) -> bool:
        return self.path is not None and not self.problem


def inventory() -> list[WeightsStatus]:
    return [status_of(spec) for spec in CATALOG]


def status_of(spec: WeightsSpec) -> WeightsStatus:
    if spec.repo_id is None:
        return _packaged(spec)
    if spec.filename is not None:
        found = cached_file(spec.repo_id, spec.filename)
        if found is None:
            return WeightsStatus(spec, None, None, None)
        return WeightsStatus(spec, found, found.stat().st_size, _hub_checksum(found))
    folder = cached_snapshot(spec.repo_id)
    if folder is None:
        return WeightsStatus(spec, None, None, None)
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    return WeightsStatus(spec, folder, size, None)


def _packaged(spec: WeightsSpec) -> WeightsStatus:
    """Weights inside an installed package, found without importing it (LiteMedSAM's imports
    torch); their checksum is verified when the segmenter loads them."""
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        return WeightsStatus(spec, None, None, spec.sha256, f"{spec.package} is not installed (a client-only install: run on a department server with --server URL)")
    path = Path(list(found.submodule_search_locations)[0]) / spec.packaged_file
    if not path.is_file():
        return WeightsStatus(spec, None, None, spec.sha256, f"{path} is missing from {spec.package}; reinstall it")
    size = path.stat().st_size
    problem = "" if size == spec.size_bytes else f"{path} has {size} bytes, {spec.size_bytes} expected; reinstall {spec.package}"
    return WeightsStatus(spec, path, size, spec.sha256, problem)


def _hub_checksum(path: Path) -> str | None:
    """A large hub file's SHA-256: the hub cache names its blob by it (small files are named
    by their git hash instead, which is 40 characters, not 64)."""
    target = Path(os.path.realpath(path)).name
    return target if len(target) == 64 and all(c in "0123456789abcdef" for c in target) else None
