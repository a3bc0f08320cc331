"""Device choice and mixed precision, shared by every model."""

from __future__ import annotations

import contextlib

import torch

from ..errors import MedSAMAgentError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(choice: str = "auto") -> torch.device:
    if choice not in DEVICE_CHOICES:
        raise MedSAMAgentError(f"unknown device {choice!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise MedSAMAgentError(
            "--device cuda was asked for but PyTorch sees no CUDA GPU "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use --device cpu or install a CUDA build of torch"
        )
    return torch.device(choice)


def autocast(device: torch.device, cpu_bf16: bool = False):
    """bf16 autocast on CUDA (what MedSAM2 and the agent were run with); on the CPU only with
    `cpu_bf16` (a runtime that chose bf16 because the CPU computes it natively), else f32."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
