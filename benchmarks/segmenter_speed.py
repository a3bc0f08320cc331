"""Per-slice latency and peak memory of both segmenters, on a 512x512 volume, per runtime.

CPU (always), printed with the processor's name:
- LiteMedSAM (real weights) and MedSAM2 (real architecture, random weights: speed does not
  depend on the weights) propagate through every slice of a 512x512 phantom of N slices,
  once per runtime (`torch`, the PyTorch f32 reference, and `auto`, OpenVINO in bf16 where
  the CPU computes it natively); printed: seconds per slice, peak resident memory above
  the process baseline, the ratio against torch f32 measured in the same run, and the
  first-run conversion time (load with an empty cache minus load with a warm one);
- peak memory over N and 2N slices (it must not grow with the number of slices);
- MedSAM2 with frames prepared lazily (as shipped) against all frames prepared up front;
- LiteMedSAM end to end (`end_to_end`): a box propagated over 13 and 40 slices, torch f32
  against the default runtime, the whole job timed (`--end-to-end-only`: this alone).

GPU (when CUDA is available): MedSAM2 slices per second in fp32 (baseline) and bf16
autocast, and the ratio bf16/fp32.

    python benchmarks/segmenter_speed.py [--slices 24] [--gpu-slices 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from MedSAMAgentLib.phantom import abdominal_phantom  # noqa: E402
from MedSAMAgentLib.prompts import Box, SlicePrompts  # noqa: E402
from MedSAMAgentLib.propagation import (
    VolumeRequest,  # noqa: E402
    segment,  # noqa: E402
)
from MedSAMAgentLib.segmenters.base import slice_frames  # noqa: E402
from MedSAMAgentLib.segmenters.litemedsam import LiteMedSAM  # noqa: E402
from MedSAMAgentLib.segmenters.medsam2 import MedSAM2, _inference_state, _VideoFrames, build_model  # noqa: E402
from MedSAMAgentLib.segmenters.runtimes.cache import CACHE_ENVIRONMENT_VARIABLE  # noqa: E402
from MedSAMAgentLib.segmenters.runtimes.hardware import cpu_name, cpu_supports_bf16, usable_cores  # noqa: E402


class PeakMemory:
    """Peak resident set size (from /proc) above the level at entry, sampled every 10 ms."""

    def __enter__(self):
        self.baseline = self.peak = _rss()
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak = max(self.peak, _rss())
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def megabytes(self) -> float:
        return (self.peak - self.baseline) / 2**20


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


def random_medsam2_checkpoint(folder: Path) -> Path:
    torch.manual_seed(0)
    path = folder / "medsam2_random.pt"
    torch.save({"model": build_model().state_dict()}, path)
    return path


def propagate(segmenter, volume, frames, key, box, slices: tuple[int, int] | None = None) -> tuple[float, float, int]:
    """Seconds per slice and peak memory of tracking through `slices` (default: all)."""
    first, last = slices or (0, len(frames) - 1)
    request = VolumeRequest(key, SlicePrompts(box=box), slice_range=(first, last), seeded_components_only=False)
    with PeakMemory() as memory:
        started = time.perf_counter()
        segment(volume, segmenter, request, frames)
        seconds = time.perf_counter() - started
    count = last - first + 1
    return seconds / count, memory.megabytes, count


def lazy_against_eager(segmenter: MedSAM2, frames, key, seed) -> tuple[float, float]:
    def run(images):
        with torch.inference_mode():
            state = _inference_state(images, *frames.image_shape, segmenter.device)
            segmenter.model.add_new_mask(state, key, 1, torch.from_numpy(seed))
            for _ in segmenter.model.propagate_in_video(state, start_frame_idx=key):
                pass

    with PeakMemory() as eager:
        run(torch.stack([_VideoFrames(frames, 0, len(frames) - 1, 512, segmenter.device)[i] for i in range(len(frames))]))
    with PeakMemory() as lazy:
        run(_VideoFrames(frames, 0, len(frames) - 1, 512, segmenter.device))
    return lazy.megabytes, eager.megabytes


def timed_load(create) -> tuple[object, float]:
    started = time.perf_counter()
    segmenter = create()
    return segmenter, time.perf_counter() - started


def cpu_runtimes(name: str, create, volume, frames, key, box, folder: Path) -> None:
    """Both runtimes of one segmenter: cold and warm loads, then propagation speed and memory."""
    rows = {}
    for runtime in ("torch", "auto"):
        os.environ[CACHE_ENVIRONMENT_VARIABLE] = str(folder / f"{name}-{runtime}-cache")  # empty: the first load converts
        _, cold = timed_load(lambda runtime=runtime: create(runtime))
        segmenter, warm = timed_load(lambda runtime=runtime: create(runtime))
        label = f"{segmenter.runtime.name} {segmenter.runtime.precision}"
        propagate(segmenter, volume, frames, key, box, slices=(key, min(key + 2, len(frames) - 1)))  # warm-up
        per_slice, megabytes, count = propagate(segmenter, volume, frames, key, box)
        rows[runtime] = per_slice
        conversion = f", first-run conversion {max(cold - warm, 0.0):.1f} s" if segmenter.runtime.name != "torch" else ""
        print(f"CPU {name:10s} {label:13s} {count} slices of 512x512: {per_slice:.3f} s/slice, peak +{megabytes:.0f} MB, "
              f"load {warm:.1f} s{conversion}", flush=True)
        del segmenter
    print(f"CPU {name:10s} ratio torch f32 / auto: {rows['torch'] / rows['auto']:.2f}x faster", flush=True)


def end_to_end(volume, frames, key, box, counts: tuple[int, ...], repeats: int = 3) -> None:
    """LiteMedSAM as shipped (evidence and all) from a box to `count` slices around it:
    seconds for the whole job per runtime, each slice encoded once, and the ratio. The
    runtimes run in turn and the best of `repeats` is kept, so that other work on a shared
    machine weighs on both alike."""
    segmenters = {runtime: LiteMedSAM(device="cpu", runtime=runtime) for runtime in ("torch", "auto")}
    for count in counts:
        first = max(0, key - count // 2)
        last = min(len(frames) - 1, first + count - 1)
        best = dict.fromkeys(segmenters, float("inf"))
        for _ in range(repeats):
            for runtime, segmenter in segmenters.items():
                segmenter._embeddings.clear()
                segmenter._seeds.clear()
                request = VolumeRequest(key, SlicePrompts(box=box), slice_range=(first, last))
                started = time.perf_counter()
                segment(volume, segmenter, request, frames)
                best[runtime] = min(best[runtime], time.perf_counter() - started)
        auto = segmenters["auto"].runtime
        print(f"CPU litemedsam end to end, {last - first + 1} slices of 512x512 from a box, best of {repeats} in turn: "
              f"torch f32 {best['torch']:.1f} s, {auto.name} {auto.precision} {best['auto']:.1f} s; "
              f"ratio {best['torch'] / best['auto']:.2f}x", flush=True)


@torch.inference_mode()
def encoders_interleaved(name: str, encoders: dict, size: int, repeats: int = 5) -> None:
    """The image encoder alone, runtimes called in turn and the best of `repeats` kept: on
    a machine shared with other work this compares the runtimes under the same load."""
    image = torch.rand(1, 3, size, size)
    best = {label: float("inf") for label in encoders}
    for _ in range(repeats):
        for label, encode in encoders.items():
            started = time.perf_counter()
            encode(image)
            best[label] = min(best[label], time.perf_counter() - started)
    timings = ", ".join(f"{label} {seconds:.3f} s" for label, seconds in best.items())
    torch_label, fast_label = encoders
    print(f"CPU {name:10s} image encoder alone at {size} px, best of {repeats} interleaved: {timings}; "
          f"ratio {best[torch_label] / best[fast_label]:.2f}x", flush=True)


def kidney_phantom(slices: int, length_mm: float):
    """The 512x512 abdominal phantom of `slices` slices over `length_mm`, its axial frames,
    and the box drawn 6 px around the right kidney on its middle slice, that slice."""
    volume, organs = abdominal_phantom(size=(512, 512, slices), spacing=(0.4, 0.32, length_mm / slices))
    frames = slice_frames(volume, "axial")
    kidney = frames.plane.to_display(organs["right kidney"])
    key = int(np.flatnonzero(kidney.any(axis=(1, 2))).mean())
    return volume, frames, kidney, Box.around(kidney[key], 6), key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=24)
    parser.add_argument("--gpu-slices", type=int, default=300)
    parser.add_argument("--end-to-end-only", action="store_true", help="only LiteMedSAM end to end, torch against the default")
    args = parser.parse_args()
    print(f"{cpu_name()}, {usable_cores()} cores, native bf16: {cpu_supports_bf16()}; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), CUDA: {torch.cuda.is_available()}")

    if args.end_to_end_only:
        longer, longer_frames, _, longer_box, longer_key = kidney_phantom(2 * args.slices, 100.0)
        end_to_end(longer, longer_frames, longer_key, longer_box, (13, 40))
        return
    volume, frames, kidney, box, key = kidney_phantom(args.slices, 200.0)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = random_medsam2_checkpoint(Path(folder))
        os.environ[CACHE_ENVIRONMENT_VARIABLE] = str(Path(folder) / "interleaved-cache")
        pair = {runtime: LiteMedSAM(device="cpu", runtime=runtime) for runtime in ("torch", "auto")}
        encoders_interleaved("litemedsam", {f"{s.runtime.name} {s.runtime.precision}": s._encode for s in pair.values()}, 256)
        pair = {runtime: MedSAM2(checkpoint, device="cpu", runtime=runtime) for runtime in ("torch", "auto")}
        encoders_interleaved("medsam2", {f"{s.runtime.name} {s.runtime.precision}": s.model.image_encoder for s in pair.values()}, 512)
        del pair
        cpu_runtimes("litemedsam", lambda runtime: LiteMedSAM(device="cpu", runtime=runtime), volume, frames, key, box, Path(folder))
        cpu_runtimes("medsam2", lambda runtime: MedSAM2(checkpoint, device="cpu", runtime=runtime), volume, frames, key, box, Path(folder))

        longer, longer_frames, _, longer_box, longer_key = kidney_phantom(2 * args.slices, 100.0)
        end_to_end(longer, longer_frames, longer_key, longer_box, (13, 40))
        litemedsam = LiteMedSAM(device="cpu")
        with PeakMemory() as short:
            propagate(litemedsam, volume, frames, key, box)
        with PeakMemory() as long:
            propagate(litemedsam, longer, longer_frames, longer_key, longer_box)
        print(f"CPU litemedsam peak resident memory: {short.peak / 2**20:.0f} MB over {args.slices} slices, "
              f"{long.peak / 2**20:.0f} MB over {2 * args.slices} slices, ratio {long.peak / short.peak:.2f}")
        os.environ[CACHE_ENVIRONMENT_VARIABLE] = str(Path(folder) / "medsam2-auto-cache")
        medsam2 = MedSAM2(checkpoint, device="cpu")
        lazy, eager = lazy_against_eager(medsam2, frames, key, kidney[key])
        print(f"CPU medsam2 frames: lazy peak +{lazy:.0f} MB, all up front +{eager:.0f} MB, ratio lazy/eager {lazy / eager:.2f}")

        if torch.cuda.is_available():
            gpu_volume, gpu_organs = abdominal_phantom(size=(512, 512, args.gpu_slices), spacing=(0.4, 0.32, 0.8))
            gpu_frames = slice_frames(gpu_volume, "axial")
            gpu_truth = gpu_frames.plane.to_display(gpu_organs["right kidney"])
            gpu_key = int(np.flatnonzero(gpu_truth.any(axis=(1, 2))).mean())
            speeds = {}
            for label, mixed in (("fp32", False), ("bf16", True)):
                segmenter = MedSAM2(checkpoint, device="cuda", mixed_precision=mixed)
                propagate(segmenter, gpu_volume, gpu_frames, gpu_key, Box.around(gpu_truth[gpu_key], 6))  # warm-up
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                per_slice, _, count = propagate(segmenter, gpu_volume, gpu_frames, gpu_key, Box.around(gpu_truth[gpu_key], 6))
                torch.cuda.synchronize()
                speeds[label] = 1.0 / per_slice
                print(f"GPU medsam2 {label}: {speeds[label]:.1f} slices/s over {count} slices, "
                      f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB ({torch.cuda.get_device_name()})")
            print(f"GPU ratio bf16/fp32 slices per second: {speeds['bf16'] / speeds['fp32']:.2f}")


if __name__ == "__main__":
    main()
