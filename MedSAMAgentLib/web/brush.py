"""The brush and the eraser on the segment a run wrote, through trame-slicer's segment
editor (Slicer's paint effect). They paint on the slice a view shows and no other (no
sphere brush), so that the slices the user touched are exactly the slices the next re-run
keeps (the logic locks edited slices)."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import MedSAMAgentError

TOOLS = ("paint", "erase")


class Brush:
    def __init__(self, slicer_app, on_edit: Callable[[], None]):
        self.editor = slicer_app.segmentation_editor
        self.tool: str | None = None
        self._segmentation = None
        self.editor.segmentation_modified.connect(lambda *_: self.tool and on_edit())

    def use(self, tool: str | None, segmentation_node, volume_node, segment_id: str | None) -> None:
        """Take up `tool` ('paint', 'erase'), or put it down (None)."""
        from trame_slicer.segmentation import SegmentationEffectErase, SegmentationEffectPaint

        if tool is None:
            self.editor.deactivate_effect()
            self.tool = None
            return
        if tool not in TOOLS:
            raise MedSAMAgentError(f"unknown tool {tool!r}")
        if segmentation_node is None or not segment_id:
            raise MedSAMAgentError("segment first: the brush and the eraser edit the segment a run wrote")
        if self._segmentation is not segmentation_node:
            self.editor.set_active_segmentation(segmentation_node, volume_node)
            self._segmentation = segmentation_node
        self.editor.set_active_segment_id(segment_id)
        effect = self.editor.set_active_effect_type(SegmentationEffectPaint if tool == "paint" else SegmentationEffectErase)
        effect.set_use_sphere_brush(False)
        self.tool = tool
