"""Which engine runs the segmenters' image encoders, and in which precision.

- `torch`: plain PyTorch in f32, the reference.
- `openvino`: the image encoder (and LiteMedSAM's mask decoder) converted to OpenVINO (cached on disk, keyed by the
  weights' SHA-256 and the OpenVINO version) in bf16 where the CPU computes bf16 natively,
  f32 elsewhere; the parts left in PyTorch run under bf16 autocast where supported.
- `auto` (default): `openvino` on the CPU; on CUDA, PyTorch as before.

A runtime that is not installed, or that fails to convert a model, falls back to `torch`
with a warning: never a crash. The choice is printed once per process.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import MedSAMAgentError
from .hardware import cpu_supports_bf16, usable_cores

if TYPE_CHECKING:  # torch is imported only when a segmenter is created
    import torch

RUNTIME_CHOICES = ("auto", "torch", "openvino")
DEFAULT_RUNTIME = "auto"

_announced: set[str] = set()


@dataclass(frozen=True)
class Runtime:
    name: str  # "torch" or "openvino"
    bf16: bool  # bf16 arithmetic on the CPU, in the runtime and under PyTorch autocast

    @property
    def precision(self) -> str:
        return "bf16" if self.bf16 else "f32"


TORCH_F32 = Runtime("torch", bf16=False)


def select_runtime(choice: str, device: torch.device) -> Runtime:
    if choice not in RUNTIME_CHOICES:
        raise MedSAMAgentError(f"unknown runtime {choice!r}; choose one of {', '.join(RUNTIME_CHOICES)}")
    if device.type != "cpu":
        if choice == "openvino":
            raise MedSAMAgentError(f"--runtime openvino runs on the CPU, not on {device.type}; use --device cpu or --runtime auto")
        return TORCH_F32
    if choice == "torch":
        return TORCH_F32
    try:
        import openvino  # noqa: F401
    except ImportError as error:
        fall_back(f"the OpenVINO runtime is not installed ({error}); pip install openvino for a faster CPU path")
        return TORCH_F32
    return Runtime("openvino", bf16=cpu_supports_bf16())


def compiled_module(
    module: torch.nn.Module,
    example_inputs: Sequence[torch.Tensor],
    name: str,
    part: str,
    weights_sha256: str,
    runtime: Runtime,
    input_shapes: Sequence[Sequence[int]] | None = None,
    f32_reason: str | None = None,
    cache: Path | None = None,
) -> Callable[..., tuple[torch.Tensor, ...]] | None:
    """`module`, the `part` ("image encoder", "mask decoder") of model `name`, compiled by
    `runtime`; None when it stays in PyTorch (runtime `torch`, or a conversion that failed,
    with a warning). `input_shapes` marks dimensions that vary between calls with -1 (by
    default every shape is the example's). With `f32_reason`, the part runs in f32 even
    where the runtime would use bf16, and the announcement says why."""
    if f32_reason is not None:
        runtime = Runtime(runtime.name, bf16=False)
    if runtime.name != "openvino":
        return None
    from .openvino_backend import load_openvino_module, openvino_version

    entry_name = f"{name}-{part.replace(' ', '-')}"
    try:
        compiled = load_openvino_module(module, example_inputs, entry_name, weights_sha256, runtime.bf16, cache, input_shapes)
    except Exception as error:  # any converter or compiler failure leaves the PyTorch path working
        fall_back(f"OpenVINO could not convert the {name} {part} ({error.__class__.__name__}: {str(error).splitlines()[0] if str(error) else ''})")
        return None
    if compiled.conversion_seconds:
        print(f"{name}: {part} converted to OpenVINO in {compiled.conversion_seconds:.0f} s (once; cached)", file=sys.stderr)
    reason = f32_reason or ("the CPU computes bf16 natively" if runtime.bf16 else "the CPU has no native bf16")
    announce(f"{name}: {part} on OpenVINO {openvino_version()} in {runtime.precision} ({reason}), {usable_cores()} threads")
    return compiled


def fall_back(reason: str) -> None:
    warnings.warn(f"{reason}; running PyTorch in f32", RuntimeWarning, stacklevel=3)


def announce(message: str) -> None:
    """Print `message` to stderr once per process (not once per slice or per model load)."""
    if message not in _announced:
        _announced.add(message)
        print(message, file=sys.stderr)


__all__ = ["RUNTIME_CHOICES", "DEFAULT_RUNTIME", "Runtime", "TORCH_F32", "select_runtime", "compiled_module", "announce"]
