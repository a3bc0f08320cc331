"""Several targets in one `segment` run: `--target "liver; spleen; right kidney"` or
`--target` given several times. The engine runs once per target (its interface takes one
target per request); the results go into one output with one segment each.

A target that fails is reported by name on its own `error:` line and the others are kept
and written; the exit status is then `EXIT_SOME_TARGETS_FAILED` (3). When every target
fails, nothing is written and the run ends like any failed run (status 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MedSAMAgentError, PromptError

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


def folder_name(target: str) -> str:
    """A folder name for a target's records: 'right kidney' -> 'right_kidney'."""
    return re.sub(r"[^A-Za-z0-9]+", "_", target).strip("_") or "target"


def run_targets(engine, requests: list, progress, info) -> list[TargetResult]:
    """Run each (target, request); a failure is kept with its target, the others go on."""
    results = []
    for number, (target, request) in enumerate(requests, 1):
        if len(requests) > 1:
            info(f"target {number}/{len(requests)}: {target!r}")
        try:
            results.append(TargetResult(target, outcome=engine.run(request, progress=progress)))
        except MedSAMAgentError as error:
            if len(requests) == 1:
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
