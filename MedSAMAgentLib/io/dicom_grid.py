"""Where the slices of a DICOM series really are, and a regular voxel grid for them.

DICOM places every slice (or frame) on its own: a position and an orientation each. A
volume needs evenly spaced slices stacked along their normal, which scanners usually
give but not always: a slice can be missing, spacing can vary, a gantry tilt shears the
stack (each slice shifted in its plane), and a series can mix orientations. ITK stacks
such slices as if they were regular, putting every voxel after the first irregularity
at the wrong place. Here each case is measured from the slices' own positions and either
resampled onto a regular grid (with a note that says what was done, as Slicer does) or
refused with the positions involved.

Resampling keeps the slices' own in-plane grid and the slice normal as axes, steps along
the normal by the smallest gap between slices (so every acquired slice of a series with
a missing slice is kept as it is), and interpolates linearly: along the normal between
the two nearest slices, and in their plane where a tilt shifts them by a fraction of a
pixel. Voxels that the slices do not fully cover (the corners of a sheared stack) get the
series' lowest value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputImageError
from .volumes import Geometry

ORIENTATION_TOLERANCE = 1e-3  # direction cosines
POSITION_TOLERANCE_MM = 0.01
MAX_GAP_FACTOR = 3.0  # a gap of up to two missing slices is interpolated; a larger one is refused


@dataclass(frozen=True)
class SliceLayout:
    """A series' slices sorted along their normal: `order` maps sorted to given slices."""

    order: np.ndarray
    depths: np.ndarray  # mm along the normal
    offsets: np.ndarray  # (n, 2): mm along the row and column directions, from the first slice
    axes: np.ndarray  # 3x3, columns: row direction (i), column direction (j), normal (k), LPS
    first_position: np.ndarray
    pixel_spacing: tuple[float, float]  # (i, j) = (between columns, between rows)
    shape: tuple[int, int]  # (rows, columns)

    @property
    def gaps(self) -> np.ndarray:
        return np.diff(self.depths)

    @property
    def tilted(self) -> bool:
        return bool(np.abs(self.offsets).max() > POSITION_TOLERANCE_MM)

    @property
    def regular(self) -> bool:
        gaps = self.gaps
        return not self.tilted and bool(np.abs(gaps - np.median(gaps)).max() <= POSITION_TOLERANCE_MM)


def layout_slices(positions, orientations, pixel_spacings, shapes, series: str) -> SliceLayout:
    """Measure the slices; refuse mixed orientations or sizes, slices at one position and
    gaps too large to interpolate."""
    positions = np.asarray(positions, float)
    orientations = np.asarray(orientations, float)
    if len(positions) < 2:
        raise InputImageError(f"DICOM series {series} has a single slice; a 3D volume is needed")
    _refuse_mixed_orientations(orientations, positions, series)
    spacings = {tuple(np.round(np.asarray(s, float), 6)) for s in pixel_spacings}
    sizes = {tuple(int(v) for v in shape) for shape in shapes}
    if len(spacings) > 1 or len(sizes) > 1:
        raise InputImageError(
            f"DICOM series {series} mixes slice sizes {sorted(sizes)} or pixel spacings {sorted(spacings)}; "
            "export one acquisition as its own series"
        )
    row, column = _unit(orientations[0][:3]), _unit(orientations[0][3:])
    normal = np.cross(row, column)
    order = np.argsort(positions @ normal, kind="stable")
    ordered = positions[order]
    depths = ordered @ normal
    relative = ordered - ordered[0]
    offsets = np.stack([relative @ row, relative @ column], axis=1)
    row_spacing, column_spacing = next(iter(spacings))
    layout = SliceLayout(
        order=order, depths=depths, offsets=offsets, axes=np.stack([row, column, normal], axis=1),
        first_position=ordered[0], pixel_spacing=(float(column_spacing), float(row_spacing)), shape=sizes.pop(),
    )
    _refuse_unusable_gaps(layout, series)
    return layout


def regular_geometry(layout: SliceLayout) -> Geometry:
    """The grid of a series whose slices are evenly spaced along their normal."""
    rows, columns = layout.shape
    return _geometry(layout.axes, layout.first_position, (*layout.pixel_spacing, float(np.median(layout.gaps))), (columns, rows, len(layout.depths)))


def resample(stack: np.ndarray, layout: SliceLayout, series: str, log) -> tuple[np.ndarray, Geometry]:
    """`stack` (slices in layout order, (n, rows, columns)) on a regular grid, with a note."""
    step_target = float(layout.gaps.min())
    extent = float(layout.depths[-1] - layout.depths[0])
    count = round(extent / step_target) + 1
    step = extent / (count - 1)
    tilted = layout.tilted
    offsets = layout.offsets if tilted else np.zeros_like(layout.offsets)
    spacing_i, spacing_j = layout.pixel_spacing
    low = offsets.min(axis=0)
    rows, columns = layout.shape
    width = columns + math.ceil((offsets[:, 0].max() - low[0]) / spacing_i - 1e-6)
    height = rows + math.ceil((offsets[:, 1].max() - low[1]) / spacing_j - 1e-6)
    shifts = (low - offsets) / np.array([spacing_i, spacing_j])  # per slice, in its pixels
    fill = float(stack.min())
    result = np.empty((count, height, width), np.float32)
    for k in range(count):
        depth = layout.depths[0] + k * step
        below = int(np.clip(np.searchsorted(layout.depths, depth, side="right") - 1, 0, len(layout.depths) - 2))
        weight = (depth - layout.depths[below]) / (layout.depths[below + 1] - layout.depths[below])
        parts = [(below, 1.0 - weight), (below + 1, weight)]
        plane = sum(part_weight * _shifted(stack[index], *shifts[index], (height, width)) for index, part_weight in parts if part_weight > 1e-6)
        result[k] = np.where(np.isnan(plane), fill, plane)
    if stack.dtype.kind in "iu":
        limits = np.iinfo(stack.dtype)
        result = np.clip(np.rint(result), limits.min, limits.max).astype(stack.dtype)
    origin = layout.first_position + layout.axes[:, 0] * low[0] + layout.axes[:, 1] * low[1]
    geometry = _geometry(layout.axes, origin, (spacing_i, spacing_j, step), (width, height, count))
    log(f"note: DICOM series {series}: {_what_was_irregular(layout)}; resampled onto a regular grid of {count} slices "
        f"{step:.4g} mm apart" + (f", {width} x {height} pixels to hold the sheared slices" if tilted else "")
        + ", interpolating linearly, as Slicer does")
    return result, geometry


def _refuse_mixed_orientations(orientations: np.ndarray, positions: np.ndarray, series: str) -> None:
    groups: list[list[int]] = []
    for index, orientation in enumerate(orientations):
        for group in groups:
            if np.abs(orientations[group[0]] - orientation).max() <= ORIENTATION_TOLERANCE:
                group.append(index)
                break
        else:
            groups.append([index])
    if len(groups) == 1:
        return
    groups.sort(key=len, reverse=True)
    described = "; ".join(
        f"{len(group)} with orientation {_cosines(orientations[group[0]])}"
        + (f" at {_points(positions[group])}" if group is not groups[0] else "")
        for group in groups
    )
    raise InputImageError(
        f"DICOM series {series} mixes slice orientations ({described}); export the slices of one orientation as their own series"
    )


def _refuse_unusable_gaps(layout: SliceLayout, series: str) -> None:
    gaps = layout.gaps
    same = np.flatnonzero(gaps <= POSITION_TOLERANCE_MM)
    if same.size:
        places = ", ".join(f"{layout.depths[i]:.2f} mm" for i in same[:5])
        raise InputImageError(
            f"DICOM series {series} has several slices at one position ({places} along the slice normal); "
            "it holds more than one volume: export one of them as its own series"
        )
    typical = float(np.median(gaps))
    wide = np.flatnonzero(gaps > MAX_GAP_FACTOR * typical + POSITION_TOLERANCE_MM)
    if wide.size:
        places = ", ".join(f"{layout.depths[i]:.2f} to {layout.depths[i + 1]:.2f} mm" for i in wide[:5])
        raise InputImageError(
            f"DICOM series {series} has slices missing: no slice between {places} along the slice normal "
            f"(slices are otherwise {typical:.4g} mm apart); more than {MAX_GAP_FACTOR - 1:.0f} missing slices "
            "cannot be interpolated: export the complete series"
        )


def _what_was_irregular(layout: SliceLayout) -> str:
    found = []
    gaps = layout.gaps
    typical = float(np.median(gaps))
    odd = np.flatnonzero(np.abs(gaps - typical) > POSITION_TOLERANCE_MM)
    if odd.size:
        places = ", ".join(f"{gaps[i]:.4g} mm between {layout.depths[i]:.2f} and {layout.depths[i + 1]:.2f} mm" for i in odd[:4])
        more = f" and {odd.size - 4} more" if odd.size > 4 else ""
        kind = "slices missing" if np.all(np.abs(gaps[odd] / typical - np.rint(gaps[odd] / typical)) < 0.05) else "irregular slice spacing"
        found.append(f"{kind} (slices are {typical:.4g} mm apart, but {places}{more}, along the slice normal)")
    if layout.tilted:
        extent = layout.depths[-1] - layout.depths[0]
        shear = np.linalg.norm(layout.offsets[-1])
        found.append(f"slices sheared in their plane by {shear:.2f} mm over {extent:.1f} mm (gantry tilt of "
                     f"{math.degrees(math.atan2(shear, extent)):.1f} degrees)")
    return " and ".join(found)


def _shifted(image: np.ndarray, shift_x: float, shift_y: float, shape: tuple[int, int]) -> np.ndarray:
    """`image` sampled at (row + shift_y, column + shift_x) for every pixel of `shape`,
    bilinearly; NaN where a pixel it needs lies outside the image."""
    base_x, base_y = math.floor(shift_x + 1e-6), math.floor(shift_y + 1e-6)
    fraction_x, fraction_y = max(shift_x - base_x, 0.0), max(shift_y - base_y, 0.0)
    rows = np.arange(shape[0]) + base_y
    columns = np.arange(shape[1]) + base_x

    def take(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        out = np.full(shape, np.nan, np.float32)
        valid_r = (r >= 0) & (r < image.shape[0])
        valid_c = (c >= 0) & (c < image.shape[1])
        out[np.ix_(valid_r, valid_c)] = image[np.ix_(r[valid_r], c[valid_c])]
        return out

    result = take(rows, columns) * ((1 - fraction_x) * (1 - fraction_y))
    if fraction_x > 1e-6:
        result += take(rows, columns + 1) * (fraction_x * (1 - fraction_y))
    if fraction_y > 1e-6:
        result += take(rows + 1, columns) * ((1 - fraction_x) * fraction_y)
        if fraction_x > 1e-6:
            result += take(rows + 1, columns + 1) * (fraction_x * fraction_y)
    return result


def _geometry(axes: np.ndarray, origin, spacing, size) -> Geometry:
    return Geometry(
        size=tuple(int(v) for v in size),
        spacing=tuple(float(v) for v in spacing),
        origin=tuple(float(v) for v in origin),
        direction=tuple(float(v) for v in axes.ravel()),
    )


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, float)
    return vector / np.linalg.norm(vector)


def _cosines(orientation) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in orientation) + ")"


def _points(points: np.ndarray) -> str:
    shown = "; ".join("(" + ", ".join(f"{v:.1f}" for v in p) + ")" for p in points[:4])
    return shown + (f" and {len(points) - 4} more" if len(points) > 4 else "") + " mm"
