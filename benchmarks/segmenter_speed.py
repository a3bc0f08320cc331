"""Per-slice latency and peak memory of both segmenters, on a 512x512 volume.

CPU (always):
- LiteMedSAM (real weights) and MedSAM2 (real architecture, random weights: speed does not
  depend on the weights) propagate through every slice of a 512x512 phantom of N slices;
  printed: seconds per slice, peak resident memory above the process baseline, and the
  ratios MedSAM2/LiteMedSAM;
- MedSAM2 with frames prepared lazily (as shipped) against all frames prepared up front
  (the baseline), same slices, same process: memory ratio lazy/eager.

GPU (when CUDA is available): MedSAM2 slices per second in fp32 (baseline) and bf16
autocast, and the ratio bf16/fp32.

    python benchmarks/segmenter_speed.py [--slices 100] [--gpu-slices 300]
"""

from __future__ import annotations

import argparse
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


def propagate(segmenter, volume, frames, key, box) -> tuple[float, float, int]:
    request = VolumeRequest(key, SlicePrompts(box=box), slice_range=(0, len(frames) - 1), keep_largest_component=False)
    with PeakMemory() as memory:
        started = time.perf_counter()
        segment(volume, segmenter, request, frames)
        seconds = time.perf_counter() - started
    return seconds / len(frames), memory.megabytes, len(frames)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--gpu-slices", type=int, default=300)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, CUDA: {torch.cuda.is_available()}")

    volume, organs = abdominal_phantom(size=(512, 512, args.slices), spacing=(0.4, 0.32, 200.0 / args.slices))
    frames = slice_frames(volume, "axial")
    truth = frames.plane.to_display(organs["right kidney"])
    key = int(np.flatnonzero(truth.any(axis=(1, 2))).mean())
    box = Box.around(truth[key], 6)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = random_medsam2_checkpoint(Path(folder))
        rows = {}
        rows["litemedsam"] = propagate(LiteMedSAM(device="cpu"), volume, frames, key, box)
        medsam2 = MedSAM2(checkpoint, device="cpu")
        rows["medsam2"] = propagate(medsam2, volume, frames, key, box)
        for name, (per_slice, megabytes, count) in rows.items():
            print(f"CPU {name:10s} {count} slices of 512x512: {per_slice:.3f} s/slice, peak +{megabytes:.0f} MB")
        print(f"CPU ratio medsam2/litemedsam: time {rows['medsam2'][0] / rows['litemedsam'][0]:.2f}, "
              f"memory {rows['medsam2'][1] / max(rows['litemedsam'][1], 1):.2f}")
        lazy, eager = lazy_against_eager(medsam2, frames, key, truth[key])
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
