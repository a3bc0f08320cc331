"""Segmenters by name. Heavy imports (torch, sam2) happen only when one is created."""

from __future__ import annotations

from .base import Prediction, Seed, Segmenter, SliceFrames
from .runtimes import DEFAULT_RUNTIME, RUNTIME_CHOICES

SEGMENTERS = ("litemedsam", "medsam2")
DEFAULT_SEGMENTER = "litemedsam"


def create_segmenter(
    name: str = DEFAULT_SEGMENTER,
    checkpoint: str | None = None,
    device: str = "auto",
    runtime: str = DEFAULT_RUNTIME,
) -> Segmenter:
    if name == "litemedsam":
        from .litemedsam import LiteMedSAM

        return LiteMedSAM(checkpoint=checkpoint, device=device, runtime=runtime)
    if name == "medsam2":
        from .medsam2 import MedSAM2

        return MedSAM2(checkpoint=checkpoint, device=device, runtime=runtime)
    from ..errors import MedSAMAgentError

    raise MedSAMAgentError(f"unknown segmenter {name!r}; choose one of {', '.join(SEGMENTERS)}")


__all__ = [
    "Prediction", "Seed", "Segmenter", "SliceFrames", "SEGMENTERS", "DEFAULT_SEGMENTER", "RUNTIME_CHOICES", "DEFAULT_RUNTIME",
    "create_segmenter",
]
