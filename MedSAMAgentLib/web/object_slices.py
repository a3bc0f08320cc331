"""The object's first and last slice along the red view, set on the page: with the box, the
3D box. A run given both stays within them, as `segment --range` does and as an ROI that
spans slices does in Slicer; without them it finds the object's ends itself. The user
scrolls to one end and presses "First here", to the other and presses "Last here" (in
either order: the smaller is the first)."""

from __future__ import annotations

from ..errors import PromptError
from .page_state import count

STATE = {"range_first": None, "range_last": None, "range_text": "", "range_serial": 0}
ENDS = ("first", "last")


class ObjectSlices:
    def __init__(self, state):
        self.state = state
        self.state.update(STATE)

    def set_here(self, end: str, index: int) -> None:
        """`end` ('first' or 'last') is slice `index`."""
        if end not in ENDS:
            raise ValueError(f"an end is one of {ENDS}, not {end!r}")
        self.state[f"range_{end}"] = int(index)
        self._show()

    def clear(self) -> None:
        self.state.range_first = self.state.range_last = None
        self._show()

    def slice_range(self) -> tuple[int, int] | None:
        """What a run is given: both ends in order, or None when neither is set."""
        first, last = self.state.range_first, self.state.range_last
        if first is None and last is None:
            return None
        if first is None or last is None:
            raise PromptError("set both of the object's end slices (First here, Last here), or clear the prompts")
        return min(first, last), max(first, last)

    def _show(self) -> None:
        set_ends = [(end, self.state[f"range_{end}"]) for end in ENDS if self.state[f"range_{end}"] is not None]
        if len(set_ends) == 2:
            self.state.range_text = "object on slices {} to {}".format(*self.slice_range())
        elif set_ends:
            self.state.range_text = "{} slice {}: set the other end too".format(*set_ends[0])
        else:
            self.state.range_text = ""
        count(self.state, "range_serial")
