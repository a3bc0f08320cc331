"""The brush, the eraser and the scissors on a segment, through trame-slicer's segment
editor (Slicer's paint and scissors effects). Each changes the slice a view shows and no
other (no sphere brush; the scissors cut one slice deep), so that the slices the user
touched are exactly the slices the next re-run keeps (the logic locks edited slices)."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import MedSAMAgentError

TOOLS = ("paint", "erase", "scissors")  # scissors: erase inside the outline traced with the mouse


class SegmentTools:
    def __init__(self, slicer_app, on_edit: Callable[[], None]):
        self.editor = slicer_app.segmentation_editor
        self.tool: str | None = None
        self._segmentation = None
        self.editor.segmentation_modified.connect(lambda *_: self.tool and on_edit())

    def use(self, tool: str | None, segmentation_node, volume_node, segment_id: str | None) -> None:
        """Take up `tool` (one of `TOOLS`) on `segment_id`, or put the tool down (None)."""
        if tool is None:
            self.editor.deactivate_effect()
            self.tool = None
            return
        if tool not in TOOLS:
            raise MedSAMAgentError(f"unknown tool {tool!r}")
        if segmentation_node is None or not segment_id:
            raise MedSAMAgentError("segment first: the eraser and the scissors edit a segment")
        if self._segmentation is not segmentation_node:
            self.editor.set_active_segmentation(segmentation_node, volume_node)
            self._segmentation = segmentation_node
        self.editor.set_active_segment_id(segment_id)
        _take_up(self.editor, tool)
        self.tool = tool


def _take_up(editor, tool: str) -> None:
    from trame_slicer.segmentation import SegmentationEffectErase, SegmentationEffectPaint, SegmentationEffectScissors
    from trame_slicer.segmentation.scissors_effect_parameters import (
        BrushInteractionMode,
        ScissorsEffectFillMode,
        ScissorsEffectRangeMode,
    )

    if tool == "scissors":
        effect = editor.set_active_effect_type(SegmentationEffectScissors)
        effect.set_brush_interaction_mode(BrushInteractionMode.CONTINUOUS)  # press, trace the outline, release
        effect.set_fill_mode(ScissorsEffectFillMode.ERASE_INSIDE)
        effect.set_range_mode(ScissorsEffectRangeMode.SYMMETRIC)
        effect.set_symmetric_distance(0.0)  # the shown slice only
    else:
        effect = editor.set_active_effect_type(SegmentationEffectPaint if tool == "paint" else SegmentationEffectErase)
        effect.set_use_sphere_brush(False)
