"""A PyTorch module converted to OpenVINO IR (once, cached on disk) and compiled for the CPU.

The IR keeps f32 weights; the precision is chosen when compiling (bf16 where the CPU
computes it natively), so one cached conversion serves both precisions.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from .cache import CacheEntry, cache_root
from .hardware import usable_cores

MODEL_FILE = "model.xml"


def openvino_version() -> str:
    return metadata.version("openvino")


class OpenVINOModule:
    """Calls the compiled model with torch tensors and returns a tuple of torch tensors
    (copies: later calls do not overwrite earlier results)."""

    def __init__(self, compiled, conversion_seconds: float):
        self._request = compiled.create_infer_request()
        self.conversion_seconds = conversion_seconds
        """Seconds spent converting on this load; 0 when the cache had the model."""

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        arrays = [np.ascontiguousarray(tensor.detach().cpu().numpy()) for tensor in inputs]
        results = self._request.infer(arrays, share_outputs=False)
        return tuple(torch.from_numpy(np.asarray(results[index])) for index in range(len(results)))


def load_openvino_module(
    module: torch.nn.Module,
    example_inputs: Sequence[torch.Tensor],
    name: str,
    weights_sha256: str,
    bf16: bool,
    root: Path | None = None,
    input_shapes: Sequence[Sequence[int]] | None = None,
) -> OpenVINOModule:
    """`module` as an OpenVINO model, from the cache entry keyed by `name`, the weights'
    SHA-256 and the OpenVINO version; converted and stored there first when the entry is
    missing or corrupt. Input shapes are those of `example_inputs` unless `input_shapes`
    gives them (-1 for a dimension that varies)."""
    import openvino

    version = openvino_version()
    shapes = [list(shape) for shape in input_shapes] if input_shapes is not None else [list(tensor.shape) for tensor in example_inputs]
    facts = {"model": name, "weights_sha256": weights_sha256, "openvino": version, "inputs": _shapes(shapes)}
    entry = CacheEntry(root or cache_root(), f"{name}-{weights_sha256[:16]}-openvino-{version}", facts)
    core = openvino.Core()
    config = {
        "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": usable_cores(),
    }
    if entry.valid():
        try:
            return OpenVINOModule(core.compile_model(core.read_model(str(entry.folder / MODEL_FILE)), "CPU", config), 0.0)
        except RuntimeError:  # the files match their manifest but OpenVINO rejects them: rebuild
            pass
    started = time.perf_counter()
    entry.write(lambda folder: _convert(module, example_inputs, shapes, folder))
    seconds = time.perf_counter() - started
    return OpenVINOModule(core.compile_model(core.read_model(str(entry.folder / MODEL_FILE)), "CPU", config), seconds)


def _convert(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor], shapes: list[list[int]], folder: Path) -> None:
    import openvino

    # Tracing warns about its own deprecation and about shape arithmetic it cannot follow;
    # the shapes here are declared (the cache key holds them) and the result is checked against
    # PyTorch by the tests, so none of it is the user's to act on.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = openvino.convert_model(
            module.eval(), example_input=tuple(example_inputs), input=[openvino.PartialShape(shape) for shape in shapes]
        )
    openvino.save_model(converted, str(folder / MODEL_FILE), compress_to_fp16=False)


def _shapes(shapes: list[list[int]]) -> str:
    return ";".join("x".join(map(str, shape)) for shape in shapes)
