"""What the radiologist shows in the scene, as engine inputs: the volume slice a slice view
is on, and the ROI and points placed with the Markups module.

Slice views are matched to volume slices by their normal, not by their orientation name,
so a view rotated to an oblique volume's plane ("Reformat" in Slicer) works as well as an
axial, coronal or sagittal one.
"""

from __future__ import annotations

import numpy as np
import slicer

from MedSAMAgentLib.errors import PromptError
from MedSAMAgentLib.orientation import VIEWS, SlicePlane

from .volume_nodes import geometry_of

# A slice view tilted further than this from every volume slice direction shows no single
# volume slice; the radiologist must straighten it rather than have us guess.
MAX_TILT_DEGREES = 20.0

Corners = tuple[tuple[float, float, float], tuple[float, float, float]]


def slice_shown(volume_node, slice_node) -> tuple[str, int]:
    """(engine view, slice index) of the volume slice that a slice view shows. The index is
    not checked against the volume here; the run that uses it as key slice checks it."""
    geometry = geometry_of(volume_node)
    slice_to_ras = slicer.util.arrayFromVTKMatrix(slice_node.GetSliceToRAS())
    normal = slice_to_ras[:3, 2]
    normal = normal / np.linalg.norm(normal)
    ijk_to_ras = geometry.ijk_to_ras()[:3, :3]
    axes = ijk_to_ras / np.linalg.norm(ijk_to_ras, axis=0)
    planes = {view: SlicePlane.for_view(geometry, view) for view in VIEWS}
    alignment = {view: abs(float(axes[:, plane.slice_axis] @ normal)) for view, plane in planes.items()}
    view = max(alignment, key=alignment.get)
    tilt = float(np.degrees(np.arccos(min(alignment[view], 1.0))))
    if tilt > MAX_TILT_DEGREES:
        raise PromptError(
            f"the {slice_node.GetLayoutName() or slice_node.GetName()} view is tilted {tilt:.0f} degrees from the volume's nearest ({view}) slices; "
            f"set it to axial, coronal or sagittal, or rotate it to the volume plane"
        )
    index = geometry.ras_to_continuous_index(slice_to_ras[:3, 3])[planes[view].slice_axis]
    return view, int(np.rint(index))


def roi_corners(roi_node) -> Corners | None:
    """Opposite corners (RAS, world) of the box an ROI node covers; None when there is no
    ROI or it has not been placed."""
    if roi_node is None or roi_node.GetNumberOfControlPoints() == 0:
        return None
    bounds = [0.0] * 6
    roi_node.GetRASBounds(bounds)
    return (bounds[0], bounds[2], bounds[4]), (bounds[1], bounds[3], bounds[5])


def placed_points(markups_node, positive: bool) -> list[tuple[tuple[float, float, float], bool]]:
    """The placed control points (RAS, world) of a point list, each tagged positive or
    negative. Points not placed (unset, or still following the mouse) are left out."""
    if markups_node is None:
        return []
    points = []
    for index in range(markups_node.GetNumberOfControlPoints()):
        if markups_node.GetNthControlPointPositionStatus(index) != markups_node.PositionDefined:
            continue
        position = [0.0, 0.0, 0.0]
        markups_node.GetNthControlPointPositionWorld(index, position)
        points.append((tuple(position), positive))
    return points

