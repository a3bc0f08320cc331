"""Drawing the box prompt on a slice view as Slicer places an ROI (trame-slicer's markups
place mode): click one corner, move, click the opposite corner. The ROI is then made one
slice thin on the slice it was drawn on, so that it is the box on that slice and leaves
the object's ends to propagation, and locked, so that clicks placing points inside it do
not move its handles; the logic reads it as the Slicer module reads its ROI
(`scene_inputs.roi_corners`). To change the box, draw it again."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from MedSAMAgentLogic.scene_inputs import Corners, roi_corners

ROI_THICKNESS_MM = 0.5  # thinner than any slice: the box lies on one slice only


class BoxDrawing:
    def __init__(self, slicer_app, slice_view, on_box: Callable[[Corners], None]):
        """`on_box`: called with the box's corners once it is placed."""
        self.scene = slicer_app.scene
        self.markups = slicer_app.markups_logic
        self.view = slice_view
        self.on_box = on_box
        self.enabled = False
        self._roi = None
        self._placed = False  # both corners clicked
        interaction = self.markups.interaction_node
        interaction.AddObserver(interaction.InteractionModeChangedEvent, self._on_interaction_mode)

    def set_enabled(self, enabled: bool) -> None:
        """Start placing a new box (it replaces the one there is), or stop."""
        if enabled == self.enabled:
            return
        self.enabled = enabled
        if enabled:
            self.clear()
            self._roi = self.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "box")
            self._roi.CreateDefaultDisplayNodes()
            self._roi.GetDisplayNode().SetPropertiesLabelVisibility(False)
            self.markups.place_node(self._roi)
        elif self._in_scene() and not self._placed:
            self.markups.disable_place_mode()
            self.clear()  # left unfinished

    def corners(self) -> Corners | None:
        return roi_corners(self._roi) if self._in_scene() and self._placed else None

    def clear(self) -> None:
        if self._in_scene():
            self.scene.RemoveNode(self._roi)
        self._roi, self._placed = None, False

    def _in_scene(self) -> bool:
        return self._roi is not None and self._roi.GetScene() is self.scene

    def _on_interaction_mode(self, *_) -> None:
        """Place mode ends after the second corner's click."""
        interaction = self.markups.interaction_node
        if (self.enabled and self._in_scene() and interaction.GetCurrentInteractionMode() != interaction.Place
                and self._roi.GetNumberOfDefinedControlPoints()):
            self.enabled, self._placed = False, True
            self._onto_shown_slice()
            self._roi.SetLocked(True)
            self.on_box(self.corners())

    def _onto_shown_slice(self) -> None:
        """Slicer gives a box drawn on a slice some depth; keep it to the slice drawn on."""
        slice_to_ras = self.view.get_view_node().GetSliceToRAS()
        normal = np.array([slice_to_ras.GetElement(row, 2) for row in range(3)])
        origin = np.array([slice_to_ras.GetElement(row, 3) for row in range(3)])
        centre = np.array(self._roi.GetCenterWorld())
        object_to_world = self._roi.GetObjectToWorldMatrix()
        axes = np.array([[object_to_world.GetElement(row, column) for row in range(3)] for column in range(3)])
        radius = [0.0, 0.0, 0.0]
        self._roi.GetRadiusXYZ(radius)
        radius[int(np.argmax(np.abs(axes @ normal)))] = ROI_THICKNESS_MM / 2  # the ROI axis across the slice
        self._roi.SetCenterWorld(*(centre - (normal @ (centre - origin)) * normal))
        self._roi.SetRadiusXYZ(*radius)
