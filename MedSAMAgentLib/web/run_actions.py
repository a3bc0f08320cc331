"""The page's run buttons: Segment, Propagate, Re-run from my edits, Cancel, Undo last run;
the progress bar, and after a typed target the agent's turns with their pictures.

The page's messages are handled one after the other: a run is a task of its own, with the
models on a worker thread, so that Cancel (and the views) are handled while it runs."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Callable

from ..errors import Cancelled, MedSAMAgentError
from .page_state import count, say
from .workspace import PreparedRun, Workspace

STATE = {"busy": False, "run_state": "idle", "run_serial": 0, "progress": 0, "progress_text": "", "summary": "", "segment_count": 0,
         "turns": []}


class RunActions:
    def __init__(self, server, workspace: Workspace, prepare_segment: Callable[[], PreparedRun], prepare_propagate: Callable[[], PreparedRun]):
        """`prepare_segment`: the Segment run from the page's targets and prompts;
        `prepare_propagate`: the Propagate run from the red view's slice."""
        self.state = server.state
        self.workspace = workspace
        self.prepare_segment = prepare_segment
        self.prepare_propagate = prepare_propagate
        self.cancel_requested = threading.Event()
        self._tasks: set[asyncio.Future] = set()  # runs under way (kept, so that they are not collected)
        self.state.update(STATE)

    def segment(self) -> None:
        self._start(self.prepare_segment)

    def propagate(self) -> None:
        self._start(self.prepare_propagate)

    def rerun(self) -> None:
        self._start(self.workspace.prepare_rerun)

    def _start(self, prepare: Callable[[], PreparedRun]) -> None:
        self._tasks.add(asyncio.ensure_future(self._run(prepare)))

    async def _run(self, prepare) -> None:
        try:
            with self.state:
                await self._run_now(prepare)
        finally:
            self._tasks.discard(asyncio.current_task())

    async def _run_now(self, prepare) -> None:
        self.state.update({"tool": None, "placing": None})  # tools and prompts are put down while a run writes
        try:
            prepared = prepare()
        except MedSAMAgentError as error:
            say(self.state, str(error), "error")
            return
        self.cancel_requested.clear()
        loop = asyncio.get_running_loop()
        with self.state:
            self.state.update({"busy": True, "run_state": "running", "progress": 0, "progress_text": "starting", "summary": "", "turns": []})
            say(self.state, "segmenting")

        def progress(text: str, done: int, total: int) -> None:
            loop.call_soon_threadsafe(self._show_progress, text, done, total)

        with self.state:
            try:
                outcomes = await loop.run_in_executor(None, self.workspace.compute, prepared, progress, self.cancel_requested.is_set)
                report = self.workspace.apply(prepared, outcomes)
            except Cancelled as error:
                self._end_run(prepared, "cancelled", str(error), "info")
            except MedSAMAgentError as error:
                self._end_run(prepared, "failed", str(error), "error")
            else:
                self.state.summary = report.summary
                self._end_run(prepared, "done", "; ".join(report.failed) or "done", "error" if report.failed else "info")

    def _show_progress(self, text: str, done: int, total: int) -> None:
        if self.state.run_state != "running":
            return
        with self.state:
            self.state.progress = 100 * done / total if total else 0
            self.state.progress_text = text

    def _end_run(self, prepared: PreparedRun, run_state: str, message: str, kind: str) -> None:
        last_run = self.workspace.logic.last_run
        turns = turn_lines(last_run) if prepared.job.target and last_run is not None else []
        self.state.update({"busy": False, "run_state": run_state, "segment_count": self.workspace.segment_count(), "turns": turns})
        self.state.progress_text = message
        count(self.state, "run_serial")
        say(self.state, message, kind)

    def cancel(self) -> None:
        self.cancel_requested.set()
        self.state.progress_text = "cancelling"

    def undo(self) -> None:
        try:
            self.workspace.undo()
            say(self.state, "the last run was taken back")
        except MedSAMAgentError as error:
            say(self.state, str(error), "error")
        self.state.segment_count = self.workspace.segment_count()


def turn_lines(last_run) -> list[dict]:
    """The agent's record as the page lists it: a line per agent run and per turn, a turn
    with its picture (the slice, the prompts and the mask the agent saw)."""
    return [{"text": line.text, "tooltip": line.tooltip,
             "picture": "data:image/png;base64," + base64.b64encode(line.picture_png).decode() if line.picture_png else ""}
            for line in last_run.lines()]
