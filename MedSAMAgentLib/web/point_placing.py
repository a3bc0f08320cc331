"""Positive and negative point prompts, placed with the mouse on any slice view as Slicer
places them: two point lists (Markups), filled through trame-slicer's markups place mode.
The logic reads them as the Slicer module reads its point lists
(`scene_inputs.placed_points`): a point on the key slice joins the box there, a point on
another slice is one more seed."""

from __future__ import annotations

from collections.abc import Callable

from MedSAMAgentLogic.scene_inputs import placed_points

KINDS = {"positive": (True, (0.2, 0.9, 0.3)), "negative": (False, (1.0, 0.3, 0.3))}  # (positive, colour)
Points = list[tuple[tuple[float, float, float], bool]]


class PointPlacing:
    def __init__(self, slicer_app, on_points: Callable[[], None]):
        self.scene = slicer_app.scene
        self.markups = slicer_app.markups_logic
        self.on_points = on_points
        self.kind: str | None = None
        self._lists: dict[str, object] = {}

    def place(self, kind: str | None) -> None:
        """Clicks on a slice view add `kind` ('positive', 'negative') points; None stops."""
        if kind is None:
            if self.kind is not None:
                self.markups.disable_place_mode()
            self.kind = None
            return
        self.markups.place_node(self._list(kind), persistent=True)
        self.kind = kind

    def points_ras(self) -> Points:
        """Every placed point (RAS), positive ones first."""
        return [point for kind, node in self._placed_lists() for point in placed_points(node, KINDS[kind][0])]

    def clear(self) -> None:
        for _, node in self._placed_lists():
            node.RemoveAllControlPoints()

    def _placed_lists(self):
        return [(kind, node) for kind, node in self._lists.items() if node.GetScene() is self.scene]

    def _list(self, kind: str):
        if kind not in dict(self._placed_lists()):
            node = self.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", f"{kind} points")
            node.CreateDefaultDisplayNodes()
            display = node.GetDisplayNode()
            display.SetSelectedColor(*KINDS[kind][1])
            display.SetColor(*KINDS[kind][1])
            display.SetPointLabelsVisibility(False)
            node.AddObserver(node.PointPositionDefinedEvent, lambda *_: self.on_points())
            node.AddObserver(node.PointRemovedEvent, lambda *_: self.on_points())
            self._lists[kind] = node
        return self._lists[kind]
