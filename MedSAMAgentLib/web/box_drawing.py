"""Drawing the box prompt with the mouse on a slice view: press, drag, release. The corners
are the view's pixels mapped to patient coordinates (RAS) on the slice the view shows, so
the box goes to the logic as the Slicer module's ROI does (`SegmentationJob.box_ras`).

While drawing is on, the view's own mouse handling (window/level on a left drag) is
detached, so that a drag draws a box and nothing else. The box is shown as a locked ROI."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Corners = tuple[tuple[float, float, float], tuple[float, float, float]]
ROI_THICKNESS_MM = 0.5  # thinner than any slice: the ROI shows the box on one slice only


class BoxDrawing:
    def __init__(self, slice_view, scene, on_box: Callable[[Corners], None]):
        self.view = slice_view
        self.scene = scene
        self.on_box = on_box
        self.enabled = False
        self.corners: Corners | None = None
        self._start: tuple[float, float, float] | None = None
        self._roi = None
        interactor = slice_view.interactor()
        for event, handler in (("LeftButtonPressEvent", self._press), ("MouseMoveEvent", self._move),
                               ("LeftButtonReleaseEvent", self._release)):
            interactor.AddObserver(event, handler, 10.0)

    def set_enabled(self, enabled: bool) -> None:
        if enabled == self.enabled:
            return
        self.enabled = enabled
        # trame-slicer keeps Slicer's interactor style here; it has no public switch.
        self.view._interactor_observer.SetInteractor(None if enabled else self.view.interactor())
        self._start = None

    def clear(self) -> None:
        self.corners, self._start = None, None
        if self._roi is not None and self._roi.GetScene() is self.scene:
            self.scene.RemoveNode(self._roi)
        self._roi = None

    def ras_at(self, x: float, y: float) -> tuple[float, float, float]:
        """The RAS point under view pixel (x, y) (origin at the bottom left)."""
        matrix = self.xy_to_ras()
        return tuple(float(v) for v in (matrix @ np.array([x, y, 0.0, 1.0]))[:3])

    def xy_to_ras(self) -> np.ndarray:
        xy_to_ras = self.view.get_view_node().GetXYToRAS()
        return np.array([[xy_to_ras.GetElement(r, c) for c in range(4)] for r in range(4)])

    def _event_ras(self) -> tuple[float, float, float]:
        x, y = self.view.interactor().GetEventPosition()
        return self.ras_at(x, y)

    def _press(self, *_):
        if self.enabled:
            self._start = self._event_ras()

    def _move(self, *_):
        if self.enabled and self._start is not None:
            self._show((self._start, self._event_ras()))

    def _release(self, *_):
        if not self.enabled or self._start is None:
            return
        corners = (self._start, self._event_ras())
        self._start = None
        if np.allclose(corners[0], corners[1]):
            return  # a click is not a box
        self.corners = corners
        self._show(corners)
        self.on_box(corners)

    def _show(self, corners: Corners) -> None:
        if self._roi is None or self._roi.GetScene() is not self.scene:
            self._roi = self.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "box")
            self._roi.CreateDefaultDisplayNodes()
            self._roi.SetLocked(True)
        low, high = np.minimum(*corners), np.maximum(*corners)
        self._roi.SetXYZ(*((low + high) / 2))
        self._roi.SetRadiusXYZ(*np.maximum((high - low) / 2, ROI_THICKNESS_MM / 2))
        self.view.schedule_render()
