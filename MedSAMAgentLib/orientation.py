"""Slicing a volume along a patient axis, shown as a radiologist expects, whatever the
storage order.

The slice axis is the array axis closest to the patient axis (no resampling, so every
output voxel is an input voxel). In-plane, the two remaining axes are permuted and
flipped so that the 2D image follows Slicer's views: axial seen from the feet (patient
right on the image left, anterior up), coronal seen from the front (right on the left,
superior up), sagittal seen from the patient's left (anterior on the left, superior up).
Models and the agent see these display images; masks come back to the voxel grid
through the exact inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import PromptError
from .io.volumes import Geometry

VIEWS = ("axial", "coronal", "sagittal")

# For each view, in LPS: the patient axis normal to the slice, and the directions in which
# image rows (downwards) and columns (rightwards) advance.
_VIEW_AXES = {
    "axial": (2, (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)),
    "coronal": (1, (0.0, 0.0, -1.0), (1.0, 0.0, 0.0)),
    "sagittal": (0, (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
}


@dataclass(frozen=True)
class SlicePlane:
    """How one view maps onto a voxel grid. Index axes are 0=i, 1=j, 2=k."""

    view: str
    slice_axis: int
    row_axis: int
    col_axis: int
    flip_rows: bool
    flip_cols: bool
    size: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @classmethod
    def for_view(cls, geometry: Geometry, view: str = "axial") -> SlicePlane:
        if view not in _VIEW_AXES:
            raise PromptError(f"unknown axis {view!r}; choose one of {', '.join(VIEWS)}")
        normal, row_direction, col_direction = _VIEW_AXES[view]
        direction = geometry.direction_matrix  # columns: i, j, k in LPS
        alignment = np.abs(direction)
        slice_axis = int(np.argmax(alignment[normal]))
        in_plane = [axis for axis in range(3) if axis != slice_axis]
        col_scores = [abs(float(np.dot(direction[:, axis], col_direction))) for axis in in_plane]
        col_axis = in_plane[int(np.argmax(col_scores))]
        row_axis = in_plane[0] if col_axis == in_plane[1] else in_plane[1]
        return cls(
            view=view,
            slice_axis=slice_axis,
            row_axis=row_axis,
            col_axis=col_axis,
            flip_rows=float(np.dot(direction[:, row_axis], row_direction)) < 0,
            flip_cols=float(np.dot(direction[:, col_axis], col_direction)) < 0,
            size=geometry.size,
            spacing=geometry.spacing,
        )

    @property
    def num_slices(self) -> int:
        return self.size[self.slice_axis]

    @property
    def image_shape(self) -> tuple[int, int]:
        return (self.size[self.row_axis], self.size[self.col_axis])

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        """(row, column) spacing in mm of the display image."""
        return (self.spacing[self.row_axis], self.spacing[self.col_axis])

    @property
    def in_plane_index_axes(self) -> tuple[int, int]:
        """The two in-plane index axes in index order (i before j before k)."""
        return tuple(sorted((self.row_axis, self.col_axis)))

    def to_display(self, array: np.ndarray) -> np.ndarray:
        """(k, j, i) array -> (slice, row, col) view; a numpy view, no copy."""
        stack = np.transpose(array, (2 - self.slice_axis, 2 - self.row_axis, 2 - self.col_axis))
        if self.flip_rows:
            stack = stack[:, ::-1, :]
        if self.flip_cols:
            stack = stack[:, :, ::-1]
        return stack

    def from_display(self, stack: np.ndarray) -> np.ndarray:
        """Exact inverse of `to_display`: (slice, row, col) -> (k, j, i), contiguous."""
        if self.flip_rows:
            stack = stack[:, ::-1, :]
        if self.flip_cols:
            stack = stack[:, :, ::-1]
        numpy_axes = (2 - self.slice_axis, 2 - self.row_axis, 2 - self.col_axis)
        return np.ascontiguousarray(np.transpose(stack, np.argsort(numpy_axes)))

    def check_slice(self, slice_index: int) -> int:
        if not 0 <= slice_index < self.num_slices:
            raise PromptError(
                f"slice {slice_index} is outside the volume: the {self.view} axis has slices 0 to {self.num_slices - 1}"
            )
        return slice_index

    def index_to_pixel(self, index_a: float, index_b: float) -> tuple[float, float]:
        """In-plane voxel indices (in index order) -> display (row, col)."""
        by_axis = dict(zip(self.in_plane_index_axes, (index_a, index_b)))
        row = by_axis[self.row_axis]
        col = by_axis[self.col_axis]
        if self.flip_rows:
            row = self.size[self.row_axis] - 1 - row
        if self.flip_cols:
            col = self.size[self.col_axis] - 1 - col
        return row, col

    def pixel_to_index(self, row: float, col: float) -> tuple[float, float]:
        """Display (row, col) -> in-plane voxel indices in index order."""
        if self.flip_rows:
            row = self.size[self.row_axis] - 1 - row
        if self.flip_cols:
            col = self.size[self.col_axis] - 1 - col
        by_axis = {self.row_axis: row, self.col_axis: col}
        return tuple(by_axis[axis] for axis in self.in_plane_index_axes)

    def voxel_index(self, slice_index: int, row: float, col: float) -> list[float]:
        """A display pixel on a slice -> the 3D voxel index (i, j, k)."""
        ijk = [0.0, 0.0, 0.0]
        ijk[self.slice_axis] = slice_index
        for axis, value in zip(self.in_plane_index_axes, self.pixel_to_index(row, col)):
            ijk[axis] = value
        return ijk

    def split_index(self, ijk) -> tuple[int, tuple[float, float]]:
        """A 3D voxel index -> (slice, in-plane indices in index order)."""
        return ijk[self.slice_axis], tuple(ijk[axis] for axis in self.in_plane_index_axes)
