"""One persistent worker thread for model work, so the GUI never freezes and models stay
loaded between runs. The GUI calls `poll()` from a timer on the main thread: progress
messages come through a queue, and results (or errors) are handed back on the main thread,
where MRML may be touched."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from MedSAMAgentLib.errors import MedSAMAgentError


class Worker:
    def __init__(self):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="MedSAMAgent")
        self._messages: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._future: Future | None = None
        self._on_done: Callable[[Future], None] | None = None

    @property
    def busy(self) -> bool:
        return self._future is not None

    def submit(self, work: Callable, on_done: Callable[[Future], None]) -> None:
        """Run `work(progress, cancel)` on the worker thread; `on_done(future)` runs later
        on the thread that calls `poll()`."""
        if self.busy:
            raise MedSAMAgentError("a run is already in progress; wait for it or cancel it")
        self._cancel.clear()
        self._on_done = on_done
        self._future = self._executor.submit(work, self._progress, self._cancel.is_set)

    def cancel(self) -> None:
        self._cancel.set()

    def poll(self, report: Callable[[str, int, int], None]) -> None:
        """Hand each progress message since the last poll to `report`, then, when the run
        is done, finish it: `on_done` comes last, so its status is not overwritten."""
        while True:
            try:
                report(*self._messages.get_nowait())
            except queue.Empty:
                break
        if self._future is not None and self._future.done():
            future, on_done = self._future, self._on_done
            self._future, self._on_done = None, None
            on_done(future)

    def _progress(self, step: str, done: int, total: int) -> None:
        self._messages.put((step, done, total))

    def shutdown(self) -> None:
        self._cancel.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
