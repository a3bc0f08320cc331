"""Several targets in one `segment` run: `--target "liver; spleen; right kidney"` or
`--target` given several times. The engine runs once per target (its interface takes one
target per request); the results go into one output with one segment each.

A target that fails is reported by name on its own `error:` line and the others are kept
and written; the exit status is then `EXIT_SOME_TARGETS_FAILED` (3). When every target
fails, nothing is written and the run ends like any failed run (status 2). A cancel ends
the whole run (nothing is written). With `--save-trajectory DIR`, each target's record goes
in its own folder `DIR/<target>` (one target: DIR itself), whatever its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Cancelled, MedSAMAgentError, PromptError
from ..targets import folder_name
from .agent_record import save_failure_record

EXIT_SOME_TARGETS_FAILED = 3


@dataclass
class TargetResult:
    target: str
    outcome: object | None = None  # engine.interface.SegmentationOutcome
    error: MedSAMAgentError | None = None


def read_ground_truths(paths: list[Path], targets: list[str], volume, plane) -> list[np.ndarray]:
    """Display-oriented ground truth per target: one mask file per target, or one label map
    whose label n is the n-th target (a target with no voxel gets an empty mask)."""
    from ..io.volumes import read_volume

    if len(paths) not in (1, len(targets)):
        raise PromptError(f"give one --gt per target ({len(targets)}), or one label map whose label n is the n-th target")
    truths = []
    for path in paths:
        truth = read_volume(path, log=lambda _: None)
        same_grid = truth.geometry.size == volume.geometry.size and np.allclose(
            truth.geometry.ijk_to_lps(), volume.geometry.ijk_to_lps(), atol=1e-3
        )
        if not same_grid:
            raise PromptError(f"the ground truth {path} is not on the input's voxel grid (size {truth.geometry.size})")
        truths.append(truth.array)
    if len(paths) == 1 and len(targets) > 1:
        return [plane.to_display(truths[0] == label) for label in range(1, len(targets) + 1)]
    return [plane.to_display(truth > 0) for truth in truths]


def record_folder_paths(folder: Path | None, targets: list[str]) -> dict[str, Path]:
    """Where each target's record goes: the folder itself for one target, a sub-folder per
    target for several."""
    if folder is None or not targets:
        return {}
    if len(targets) == 1:
        return {targets[0]: Path(folder)}
    return {target: Path(folder) / folder_name(target) for target in targets}


def record_folders(folder: Path | None, targets: list[str]) -> dict[str, Path]:
    """`record_folder_paths`, with the folder of several targets' records created now, so
    that each record may be written into it."""
    if folder is not None and len(targets) > 1 and Path(folder).parent.is_dir():
        Path(folder).mkdir(exist_ok=True)
    return record_folder_paths(folder, targets)


def run_targets(engine, requests: list, progress, cancel, info, record_folders: dict[str, Path]) -> list[TargetResult]:
    """Run each (target, request); a failure is kept with its target (and its record
    written) while the others go on; a cancel, or the failure of a single target, ends the
    run."""
    results = []
    for number, (target, request) in enumerate(requests, 1):
        if len(requests) > 1:
            info(f"target {number}/{len(requests)}: {target!r}")
        try:
            results.append(TargetResult(target, outcome=engine.run(request, progress=progress, cancel=cancel)))
        except MedSAMAgentError as error:
            if target in record_folders:
                save_failure_record(error, record_folders[target])
            if len(requests) == 1 or isinstance(error, Cancelled):
                raise
            results.append(TargetResult(target, error=error))
    return results


def report_failures(results: list[TargetResult], error_line) -> bool:
    """One line per failed target; raise when every target failed. True if any failed."""
    failed = [result for result in results if result.error is not None]
    if failed and len(failed) == len(results):
        reasons = "; ".join(f"{result.target!r}: {result.error}" for result in failed)
        raise MedSAMAgentError(f"every target failed, nothing was written ({reasons})")
    for result in failed:
        error_line(f"target {result.target!r} failed: {result.error}")
    return bool(failed)
