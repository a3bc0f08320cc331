"""One call from a volume and a request to a mask on the volume's grid: the function the
command line, the demo and the Slicer module all use."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .intensity import Window, choose_window
from .orientation import SlicePlane
from .progress import CancelCheck, ProgressCallback
from .propagation import VolumeRequest, segment_volume
from .segmenters.base import Segmenter, SliceFrames
from .volume import Volume


@dataclass
class SegmentationResult:
    mask: np.ndarray  # (k, j, i) bool, on the input grid
    stack: np.ndarray  # (slice, row, col) bool, display orientation
    frames: SliceFrames
    seconds: float

    def summary(self, volume: Volume, seconds: float | None = None) -> str:
        """Voxels, mL, slices and seconds (this segmentation's, or `seconds` for a whole run)."""
        voxels = int(self.mask.sum())
        millilitres = voxels * volume.geometry.voxel_volume_ml
        slices = int(self.stack.any(axis=(1, 2)).sum())
        seconds = self.seconds if seconds is None else seconds
        return f"{voxels} voxels, {millilitres:.1f} mL, {slices} {self.frames.plane.view} slices, {seconds:.1f} s"


def slice_frames(volume: Volume, view: str = "axial", window: str | Window | None = None, target: str | None = None) -> SliceFrames:
    plane = SlicePlane.for_view(volume.geometry, view)
    if not isinstance(window, Window):
        window = choose_window(volume.array, volume.modality, window, target)
    return SliceFrames(volume.array, plane, window)


def segment(
    volume: Volume,
    segmenter: Segmenter,
    request: VolumeRequest,
    frames: SliceFrames,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> SegmentationResult:
    started = time.perf_counter()
    stack = segment_volume(segmenter, frames, request, progress=progress, cancel=cancel)
    mask = frames.plane.from_display(stack)
    return SegmentationResult(mask=mask, stack=stack, frames=frames, seconds=time.perf_counter() - started)
