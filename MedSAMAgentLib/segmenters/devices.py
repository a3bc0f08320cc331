"""Device choice and mixed precision, shared by every model."""

from __future__ import annotations

import contextlib

import torch

from ..errors import MedSAMAgentError
from . import check_device_name


def resolve_device(choice: str = "auto") -> torch.device:
    check_device_name(choice)
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MedSAMAgentError(
                f"--device {choice} was asked for but PyTorch sees no CUDA GPU "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use --device cpu or install a CUDA build of torch"
            )
        device = torch.device(choice)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MedSAMAgentError(f"--device {choice}: this computer has {torch.cuda.device_count()} CUDA GPUs (cuda:0 and up)")
        return device
    return torch.device(choice)


def autocast(device: torch.device, cpu_bf16: bool = False):
    """bf16 autocast on CUDA (what MedSAM2 and the agent were run with); on the CPU only with
    `cpu_bf16` (a runtime that chose bf16 because the CPU computes it natively), else f32."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
