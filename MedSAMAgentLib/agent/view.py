"""The image the agent sees, and the exact map between its 0-999 grid and slice pixels.

A slice is scaled to its physical aspect ratio (anisotropic coronal and sagittal slices
would otherwise look squashed), fitted into 512x512 and centred on black; the current mask
is blended in pure green at alpha 0.5. Coordinates go back through the same letterbox
(offset and scale), which the official inference forgot, so non-square slices map right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..montage import overlay
from ..prompts import Box, Point
from .protocol import COORDINATE_SCALE, MAX_COORDINATE, MODEL_IMAGE_SIZE, OVERLAY_ALPHA, OVERLAY_COLOUR


@dataclass(frozen=True)
class Letterbox:
    """Slice pixel (x, y) <-> model pixel: model = slice * scale + offset."""

    slice_height: int
    slice_width: int
    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    content_width: int
    content_height: int
    size: int = MODEL_IMAGE_SIZE

    @classmethod
    def fit(cls, slice_shape: tuple[int, int], pixel_spacing: tuple[float, float] = (1.0, 1.0), size: int = MODEL_IMAGE_SIZE) -> Letterbox:
        height, width = slice_shape
        physical_h, physical_w = height * pixel_spacing[0], width * pixel_spacing[1]
        fit = size / max(physical_h, physical_w)
        content_h = max(1, int(round(physical_h * fit)))
        content_w = max(1, int(round(physical_w * fit)))
        offset_x, offset_y = (size - content_w) // 2, (size - content_h) // 2
        return cls(height, width, content_w / width, content_h / height, float(offset_x), float(offset_y), content_w, content_h, size)

    # -- images -----------------------------------------------------------------------
    def image(self, slice_rgb: np.ndarray, mask: np.ndarray | None = None) -> Image.Image:
        """The model's view: the letterboxed slice, with `mask` blended in green."""
        picture = np.array(self._place(Image.fromarray(slice_rgb), Image.BILINEAR, "RGB"))
        if mask is not None:
            picture = overlay(picture, self.mask(mask), OVERLAY_ALPHA, OVERLAY_COLOUR)
        return Image.fromarray(picture)

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """A slice mask on the 512 grid (nearest neighbour, as the overlay shows it)."""
        return np.asarray(self._place(Image.fromarray(mask.astype(np.uint8) * 255), Image.NEAREST, "L")) > 127

    def _place(self, picture: Image.Image, resample, mode: str) -> Image.Image:
        canvas = Image.new(mode, (self.size, self.size), 0)
        canvas.paste(picture.resize((self.content_width, self.content_height), resample), (int(self.offset_x), int(self.offset_y)))
        return canvas

    # -- coordinates ------------------------------------------------------------------
    def to_slice(self, grid_x: float, grid_y: float) -> tuple[float, float]:
        """0-999 grid -> slice pixel (continuous), clipped to the slice."""
        model_x = grid_x / COORDINATE_SCALE * self.size
        model_y = grid_y / COORDINATE_SCALE * self.size
        x = (model_x - self.offset_x) / self.scale_x
        y = (model_y - self.offset_y) / self.scale_y
        return float(np.clip(x, 0, self.slice_width - 1)), float(np.clip(y, 0, self.slice_height - 1))

    def to_model(self, x: float, y: float) -> tuple[float, float]:
        """Slice pixel -> pixel of the 512x512 view."""
        return x * self.scale_x + self.offset_x, y * self.scale_y + self.offset_y

    def to_grid(self, x: float, y: float) -> tuple[int, int]:
        """Slice pixel -> nearest 0-999 grid point (what a policy that sees the slice writes)."""
        grid = np.rint(np.array(self.to_model(x, y)) / self.size * COORDINATE_SCALE)
        return tuple(int(v) for v in np.clip(grid, 0, MAX_COORDINATE))

    def box_to_slice(self, grid_box) -> Box:
        x0, y0 = self.to_slice(grid_box[0], grid_box[1])
        x1, y1 = self.to_slice(grid_box[2], grid_box[3])
        return Box(round(x0), round(y0), round(x1), round(y1))

    def point_to_slice(self, grid_point, positive: bool) -> Point:
        x, y = self.to_slice(grid_point[0], grid_point[1])
        return Point(round(x), round(y), positive)

    def inside_content(self, grid_x: float, grid_y: float) -> bool:
        """Whether a grid point falls on the slice rather than on the letterbox padding."""
        model_x = grid_x / COORDINATE_SCALE * self.size
        model_y = grid_y / COORDINATE_SCALE * self.size
        return (
            self.offset_x - 1 <= model_x <= self.offset_x + self.content_width + 1
            and self.offset_y - 1 <= model_y <= self.offset_y + self.content_height + 1
        )
