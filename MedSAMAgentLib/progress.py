"""Progress reports and cancellation, as plain callables so that the command line (a tqdm
bar), the Slicer module (a Qt progress bar fed from a worker thread) and tests can all
drive the same engine."""

from __future__ import annotations

from collections.abc import Callable

from .errors import Cancelled

ProgressCallback = Callable[[str, int, int], None]
"""progress(step description, done, total)."""

CancelCheck = Callable[[], bool]
"""cancel() -> True once the user asked to stop."""


def report(progress: ProgressCallback | None, step: str, done: int, total: int) -> None:
    if progress is not None:
        progress(step, done, total)


def check_cancel(cancel: CancelCheck | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled()
