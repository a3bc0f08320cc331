"""The agent's record on the command line: `--save-trajectory DIR` for every run (done,
failed or cancelled), and Ctrl+C as a cancel that still leaves the record."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from ..agent.records import RECORD_FILE, check_record_folder, failure_outcome, write_records
from ..errors import MedSAMAgentError, OutputError
from .options import info


def check_trajectory_option(folder: Path, overwrite: bool) -> None:
    """Refuse, before any work, a --save-trajectory folder the record could not go to."""
    check_record_folder(folder)
    if (folder / RECORD_FILE).exists() and not overwrite:
        raise OutputError(f"{folder} already holds a trajectory; pass --overwrite to replace it")
    if not folder.parent.is_dir():
        raise OutputError(f"folder {folder.parent} does not exist")


def save_failure_record(error: MedSAMAgentError, folder: Path) -> None:
    """Write the record a failed or cancelled job left (`error.records`, perhaps none) and
    name the folder in the error's line."""
    written = write_records(error.records, folder, failure_outcome(error))
    error.args = (f"{error} (the agent's record is in {written})",)


@contextlib.contextmanager
def cancel_on_interrupt() -> Iterator:
    """A cancel check that the first Ctrl+C sets (the job stops at its next agent turn or
    slice, with its record); a second Ctrl+C interrupts at once, as usual."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield requested.is_set
        return

    def first_interrupt(signum, frame):
        requested.set()
        signal.signal(signal.SIGINT, previous)
        info("cancelling at the next agent turn or slice; press Ctrl+C again to stop at once")

    previous = signal.signal(signal.SIGINT, first_interrupt)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGINT, previous)
