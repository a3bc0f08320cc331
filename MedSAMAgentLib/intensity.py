"""Intensity windows that turn a volume into 8-bit slices.

CT uses width/level presets (the values radiologists use, as in the MedSAM2 Slicer
plugin); MR and unknown modalities are clipped to the 0.5-99.5 percentile of the
non-zero voxels of the whole volume, so that every slice of a volume shares one scale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import PromptError

CT_PRESETS: dict[str, tuple[float, float]] = {
    "abdomen": (400.0, 40.0),
    "lung": (1500.0, -600.0),
    "brain": (80.0, 40.0),
    "mediastinum": (350.0, 50.0),
    "bone": (1800.0, 400.0),
}
DEFAULT_CT_PRESET = "abdomen"
PERCENTILE_RANGE = (0.5, 99.5)
_WIDTH_LEVEL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Window:
    """Linear map of [low, high] onto 0..255, values outside clipped."""

    low: float
    high: float
    name: str

    def apply(self, values: np.ndarray) -> np.ndarray:
        scale = 255.0 / (self.high - self.low)
        scaled = (np.asarray(values, dtype=np.float32) - self.low) * scale
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)

    def to_rgb(self, values: np.ndarray) -> np.ndarray:
        """A 2D slice -> (H, W, 3) uint8, the grey value in all three channels."""
        grey = self.apply(values)
        return np.repeat(grey[..., None], 3, axis=-1)


def parse_window(spec: str) -> tuple[float, float] | str:
    """A preset name or 'W/L' -> the preset name or (width, level)."""
    text = spec.strip().lower()
    if text in CT_PRESETS or text == "percentile":
        return text
    match = _WIDTH_LEVEL.match(text)
    if match:
        width, level = float(match.group(1)), float(match.group(2))
        if width <= 0:
            raise PromptError(f"window width must be positive, got {spec!r}")
        return width, level
    presets = ", ".join(list(CT_PRESETS) + ["percentile"])
    raise PromptError(f"unknown window {spec!r}: use a preset ({presets}) or width/level such as 400/40")


_TARGET_PRESETS = (
    ("lung", ("lung", "airway", "bronch", "pulmonary nodule")),
    ("brain", ("brain", "ventricle", "hemorrhage", "haemorrhage", "cerebell", "intracranial")),
    ("bone", ("bone", "vertebra", "rib", "femur", "pelvis", "skull", "spine", "fracture")),
    ("mediastinum", ("mediastin", "heart", "lymph node", "esophag", "oesophag", "thymus")),
)


def preset_for_target(description: str | None) -> str:
    """The CT preset a radiologist would pick to look at the described target."""
    text = (description or "").lower()
    for preset, keywords in _TARGET_PRESETS:
        if any(keyword in text for keyword in keywords):
            return preset
    return DEFAULT_CT_PRESET


def choose_window(volume_array: np.ndarray, modality: str, spec: str | None = None, target: str | None = None) -> Window:
    """The window for a volume: the user's choice, else a CT preset for CT (picked from the
    target description when there is one), else percentiles."""
    if spec is None:
        spec = preset_for_target(target) if modality == "CT" else "percentile"
    parsed = parse_window(spec)
    if parsed == "percentile":
        return percentile_window(volume_array)
    if isinstance(parsed, str):
        width, level = CT_PRESETS[parsed]
        name = f"{parsed} {width:g}/{level:g}"
    else:
        width, level = parsed
        name = f"{width:g}/{level:g}"
    return Window(level - width / 2.0, level + width / 2.0, name)


def percentile_window(volume_array: np.ndarray) -> Window:
    values = volume_array[volume_array != 0]
    if values.size == 0:
        values = volume_array.ravel()
    step = max(1, values.size // 2_000_000)  # a strided sample keeps this fast on big volumes
    low, high = np.percentile(values[::step], PERCENTILE_RANGE)
    if high <= low:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        high = low + 1.0
    return Window(float(low), float(high), f"percentile {PERCENTILE_RANGE[0]}-{PERCENTILE_RANGE[1]}")
