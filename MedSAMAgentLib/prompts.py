"""Prompts on a display slice: boxes and clicks in pixel coordinates (x = column, y = row).

A box is inclusive on both ends, like the command line's `--box`: a one-pixel box is
(x, y, x, y). Conversions from voxel indices and from RAS millimetres go through the
`SlicePlane`, so they are right for flipped, permuted and oblique volumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import PromptError
from .io.volumes import Geometry
from .orientation import SlicePlane


@dataclass(frozen=True)
class Box:
    x0: float
    y0: float
    x1: float
    y1: float

    def as_list(self) -> list[float]:
        return [float(self.x0), float(self.y0), float(self.x1), float(self.y1)]

    @classmethod
    def around(cls, mask: np.ndarray, margin: float = 0.0) -> Box | None:
        """Bounding box of a 2D mask grown by `margin` pixels, clipped to the image."""
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(mask.any(axis=0))
        height, width = mask.shape
        return cls(
            max(0.0, cols[0] - margin),
            max(0.0, rows[0] - margin),
            min(width - 1.0, cols[-1] + margin),
            min(height - 1.0, rows[-1] + margin),
        )


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    positive: bool = True


@dataclass(frozen=True)
class SlicePrompts:
    """What the user or the agent gives on one slice."""

    box: Box | None = None
    points: tuple[Point, ...] = field(default_factory=tuple)

    def is_empty(self) -> bool:
        return self.box is None and not self.points


def check_prompts(prompts: SlicePrompts, image_shape: tuple[int, int]) -> SlicePrompts:
    """Reject boxes and points that fall outside the slice or have no area."""
    height, width = image_shape
    if prompts.is_empty():
        raise PromptError("no prompt given: a box (--box) or at least one point (--point) is needed")
    box = prompts.box
    if box is not None:
        if box.x1 < box.x0 or box.y1 < box.y0:
            raise PromptError(f"box {_fmt(box.as_list())} is inverted: give the minimum corner, then the maximum corner")
        if box.x0 < 0 or box.y0 < 0 or box.x1 > width - 1 or box.y1 > height - 1:
            raise PromptError(
                f"box {_fmt(box.as_list())} (display x0 y0 x1 y1) lies outside the {width}x{height} slice"
            )
        if box.x1 == box.x0 or box.y1 == box.y0:
            raise PromptError(f"box {_fmt(box.as_list())} has zero area; it must span at least two voxels each way")
    for point in prompts.points:
        if not (0 <= point.x <= width - 1 and 0 <= point.y <= height - 1):
            raise PromptError(f"point ({point.x:g}, {point.y:g}) lies outside the {width}x{height} slice")
    return prompts


class PromptsBySlice:
    """Boxes and clicks on any slices, in the order given: on one slice a later box replaces
    an earlier one and clicks add up."""

    def __init__(self):
        self.slices: list[int] = []  # in the order first prompted
        self._boxes: dict[int, Box] = {}
        self._points: dict[int, list[Point]] = {}

    def add(self, slice_index: int, prompt: Box | Point) -> None:
        if slice_index not in self.slices:
            self.slices.append(slice_index)
        if isinstance(prompt, Box):
            self._boxes[slice_index] = prompt
        else:
            self._points.setdefault(slice_index, []).append(prompt)

    def split(self, key_slice: int) -> tuple[SlicePrompts | None, dict[int, SlicePrompts]]:
        """The key slice's prompts (None when it has none) and those on every other slice."""
        on = {index: SlicePrompts(self._boxes.get(index), tuple(self._points.get(index, ()))) for index in self.slices}
        return on.pop(key_slice, None), on


def checked_range(key_slice: int | None, slice_range: tuple[int, int] | None, num_slices: int) -> tuple[int, int]:
    """The first and last slice to propagate over: the user's range, checked against the
    volume and the key slice, or the whole volume."""
    if key_slice is not None and not 0 <= key_slice < num_slices:
        raise PromptError(f"slice {key_slice} is outside the volume: slices are 0 to {num_slices - 1}")
    if slice_range is None:
        return 0, num_slices - 1
    first, last = slice_range
    if first > last:
        raise PromptError(f"range {first} {last} is inverted: give the first slice, then the last")
    if first < 0 or last >= num_slices:
        raise PromptError(f"range {first} {last} is outside the volume: slices are 0 to {num_slices - 1}")
    if key_slice is not None and not first <= key_slice <= last:
        raise PromptError(f"the key slice {key_slice} is outside the range {first} {last}")
    return first, last


def check_seed_slice(index: int, num_slices: int, slice_range: tuple[int, int] | None, what: str) -> None:
    """A slice holding `what` (a prompt, say) lies in the volume and in the user's range."""
    if not 0 <= index < num_slices:
        raise PromptError(f"the {what} on slice {index} is outside the volume: slices are 0 to {num_slices - 1}")
    if slice_range is not None and not slice_range[0] <= index <= slice_range[1]:
        raise PromptError(f"the {what} on slice {index} is outside the range {slice_range[0]} {slice_range[1]}")


def box_from_index(plane: SlicePlane, a0: float, b0: float, a1: float, b1: float) -> Box:
    """`--box I0 J0 I1 J1`: in-plane voxel indices in index order, minimum then maximum."""
    if a1 < a0 or b1 < b0:
        raise PromptError(f"box {_fmt([a0, b0, a1, b1])} is inverted: give the minimum pair, then the maximum pair")
    _check_inside(plane, (a0, b0), "box corner")
    _check_inside(plane, (a1, b1), "box corner")
    if a1 == a0 or b1 == b0:
        raise PromptError(f"box {_fmt([a0, b0, a1, b1])} has zero area; it must span at least two voxels each way")
    r0, c0 = plane.index_to_pixel(a0, b0)
    r1, c1 = plane.index_to_pixel(a1, b1)
    return Box(min(c0, c1), min(r0, r1), max(c0, c1), max(r0, r1))


def point_from_index(plane: SlicePlane, a: float, b: float, positive: bool) -> Point:
    _check_inside(plane, (a, b), "point")
    row, col = plane.index_to_pixel(a, b)
    return Point(col, row, positive)


def ras_to_voxel(geometry: Geometry, ras_mm) -> np.ndarray:
    """RAS millimetres -> nearest voxel index (i, j, k)."""
    return np.rint(geometry.ras_to_continuous_index(ras_mm)).astype(int)


@dataclass(frozen=True)
class BoxAcross:
    """A box given by two opposite corners in RAS: the slices it spans along the view
    (each corner on its nearest slice) and its in-plane extent. A box on one slice is flat;
    one that spans several gives the object's extent across slices."""

    first: int
    last: int
    box: Box

    @property
    def flat(self) -> bool:
        return self.first == self.last

    @property
    def middle(self) -> int:
        return int(np.rint((self.first + self.last) / 2))

    def slice_range(self, given: tuple[int, int] | None, what: str) -> tuple[int, int] | None:
        """The range to propagate over: the box's slices when it spans several (a range
        given as well must be the same), else `given`."""
        if self.flat:
            return given
        if given is not None and tuple(given) != (self.first, self.last):
            raise PromptError(
                f"{what} spans slices {self.first} to {self.last}, which differs from the range {given[0]} {given[1]}: "
                "give the object's ends once, by the box or by the range"
            )
        return self.first, self.last


def box_from_ras(geometry: Geometry, plane: SlicePlane, corner_a, corner_b) -> BoxAcross:
    """`--box-ras` (or an ROI): two opposite corners in RAS mm -> the slices the box spans
    and its display box."""
    voxel_a, voxel_b = ras_to_voxel(geometry, corner_a), ras_to_voxel(geometry, corner_b)
    first, last = sorted(int(voxel[plane.slice_axis]) for voxel in (voxel_a, voxel_b))
    if first < 0 or last >= plane.num_slices:
        raise PromptError(
            f"the box spans {plane.view} slices {first} to {last}, beyond the volume: slices are 0 to {plane.num_slices - 1}"
        )
    in_plane = plane.in_plane_index_axes
    low = [min(voxel_a[axis], voxel_b[axis]) for axis in in_plane]
    high = [max(voxel_a[axis], voxel_b[axis]) for axis in in_plane]
    return BoxAcross(first, last, box_from_index(plane, low[0], low[1], high[0], high[1]))


def point_from_ras(geometry: Geometry, plane: SlicePlane, ras_mm, positive: bool) -> tuple[int, Point]:
    voxel = ras_to_voxel(geometry, ras_mm)
    slice_index, (a, b) = plane.split_index(voxel)
    plane.check_slice(int(slice_index))
    return int(slice_index), point_from_index(plane, a, b, positive)


def _check_inside(plane: SlicePlane, in_plane_index, what: str) -> None:
    for axis, value in zip(plane.in_plane_index_axes, in_plane_index):
        if not 0 <= value <= plane.size[axis] - 1:
            names = "ijk"
            raise PromptError(
                f"{what} {_fmt(in_plane_index)} lies outside the slice: {names[axis]} must be in 0..{plane.size[axis] - 1}"
            )


def _fmt(values) -> str:
    return "[" + " ".join(f"{v:g}" for v in values) + "]"
