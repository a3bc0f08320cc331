"""Progress on the terminal: a tqdm bar on stderr fed by the engine's progress callback."""

from __future__ import annotations

import sys


class ProgressBar:
    def __enter__(self):
        from tqdm import tqdm

        self._bar = tqdm(total=1, unit="step", file=sys.stderr, leave=False, dynamic_ncols=True)
        return self

    def update(self, step: str, done: int, total: int) -> None:
        if total != self._bar.total or done < self._bar.n:  # a new phase
            self._bar.reset(total=total)
        self._bar.n = done
        self._bar.set_description(step, refresh=False)
        self._bar.refresh()

    def __exit__(self, *exc):
        self._bar.close()
        return False
