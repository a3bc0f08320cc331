"""What the processor offers: its name, its cores, and whether it computes bf16 natively."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# Instruction-set flags (as Linux names them) that make bf16 faster than f32 rather than
# emulated: AVX-512 BF16 (Cooper Lake, Zen 4 and later) and AMX (Sapphire Rapids and later).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def _cpuinfo_field(field: str) -> str | None:
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return None
    for line in path.read_text(errors="replace").splitlines():
        name, _, value = line.partition(":")
        if name.strip() == field:
            return value.strip()
    return None


def cpu_flags() -> frozenset[str]:
    flags = _cpuinfo_field("flags")
    return frozenset(flags.split()) if flags else frozenset()


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 arithmetic; elsewhere bf16 would be emulated and
    slower than f32. Unknown platforms (no /proc/cpuinfo) answer False, the safe choice."""
    return bool(cpu_flags() & NATIVE_BF16_FLAGS)


def cpu_name() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the platform has one), at most
    `OMP_NUM_THREADS` when that is set: the share of the machine a batch worker or a Ray
    actor was given, which PyTorch honours too."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    share = os.environ.get("OMP_NUM_THREADS", "")
    return min(cores, int(share)) if share.isdigit() and int(share) > 0 else cores
