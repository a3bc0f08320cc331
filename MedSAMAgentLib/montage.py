"""PNG pictures of results: slices with the mask blended in green."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .segmenters.base import SliceFrames

GREEN = np.array([0, 255, 0], dtype=np.float32)


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5, colour=GREEN) -> np.ndarray:
    """Blend `colour` into an (H, W, 3) uint8 image where `mask` is set (the agent's view)."""
    blended = image.astype(np.float32)
    blended[mask] = blended[mask] * (1.0 - alpha) + np.asarray(colour, np.float32) * alpha
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def montage(frames: SliceFrames, stack: np.ndarray, path: Path, tiles: int = 12, columns: int = 4) -> Path:
    """Evenly spaced slices across the mask's extent (or the volume, if empty), with the
    mask overlaid and each slice's index written in its corner."""
    present = np.flatnonzero(stack.any(axis=(1, 2)))
    first, last = (present[0], present[-1]) if present.size else (0, len(frames) - 1)
    indices = np.unique(np.linspace(first, last, min(tiles, last - first + 1)).round().astype(int))
    pictures = []
    for index in indices:
        picture = Image.fromarray(overlay(frames[index], stack[index]))
        ImageDraw.Draw(picture).text((4, 2), f"{frames.plane.view} {index}", fill=(255, 255, 0))
        pictures.append(picture)
    height, width = stack.shape[1:]
    rows = -(-len(pictures) // columns)
    sheet = Image.new("RGB", (columns * width, rows * height))
    for number, picture in enumerate(pictures):
        sheet.paste(picture, ((number % columns) * width, (number // columns) * height))
    sheet.save(path)
    return path
