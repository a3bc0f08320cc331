"""Propagation: from prompted slices to a 3D mask, for every segmenter (`request`: what is
asked and the plan it implies; `volume`: the tracks that carry it out)."""

from .request import Plan, Stretch, VolumeRequest, plan
from .volume import ABSENT_SLICES_TO_STOP, SegmentationResult, seeded_components, segment, segment_volume

__all__ = [
    "ABSENT_SLICES_TO_STOP", "Plan", "SegmentationResult", "Stretch", "VolumeRequest", "plan", "seeded_components", "segment",
    "segment_volume",
]
