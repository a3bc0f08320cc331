"""Memory of MedSAM2 with both configurations loaded (propagation at 512 px, the agent's
turns at 1024 px on the same weight tensors) against one (turns at 512 px too), and
against what sharing avoids (a second model loaded from the checkpoint for 1024 px).

Each setting runs in a fresh child process (peak resident memory only ever grows within a
process), all in one run of this script, on random weights of the real architecture:
- weights: bytes of distinct tensor storage behind every model the setting holds;
- peak after loading: the process's peak resident memory once the models are built;
- peak after a turn: the same after one box turn on a 512x512 slice (the 1024 px encoder's
  activations are four times the 512 px ones);
- on a GPU, the peak of allocated GPU memory after the turn.
Ratios are against the one-configuration setting of the same run.

    python benchmarks/medsam2_turn_memory.py                   # PyTorch f32 weights (the default)
    python benchmarks/medsam2_turn_memory.py --runtime auto    # with the converted CPU encoders
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from MedSAMAgentLib.prompts import Box, SlicePrompts  # noqa: E402

SETTINGS = {
    "one configuration (turns at 512 px)": "one",
    "both, sharing weights (turns at 1024 px)": "shared",
    "both, a second copy loaded (not used)": "copy",
}
MB = 1024 * 1024


def peak_resident_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def distinct_weight_bytes(models) -> int:
    storages = {}
    for model in models:
        for tensor in model.state_dict().values():
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
    return sum(storages.values())


def child(setting: str, checkpoint: str, runtime: str) -> dict:
    """Load the setting's models, measure, make one turn, measure again."""
    from MedSAMAgentLib.segmenters.checkpoints import load_weights
    from MedSAMAgentLib.segmenters.medsam2 import MedSAM2
    from MedSAMAgentLib.segmenters.medsam2_configs import TRAINED_TURNS_CONFIG, build_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    segmenter = MedSAM2(checkpoint, device=device, runtime=runtime, agent_turn_size=512 if setting == "one" else 1024)
    models = [segmenter.model, segmenter.agent_turns.model]  # builds the 1024 px view where there is one
    if setting == "copy":
        copy = build_model(TRAINED_TURNS_CONFIG)
        load_weights(copy, Path(checkpoint), "MedSAM2")
        models.append(copy.to(device))
    loaded = peak_resident_mb()
    image = np.repeat(np.random.default_rng(0).integers(0, 255, (512, 512, 1), dtype=np.uint8), 3, axis=-1)
    segmenter.predict_slice(image, SlicePrompts(box=Box(150, 180, 260, 320)))
    return {
        "weights_mb": distinct_weight_bytes(models) / MB,
        "peak_loaded_mb": loaded,
        "peak_turn_mb": peak_resident_mb(),
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / MB if device == "cuda" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default="torch", help="MedSAM2's runtime on the CPU (torch, auto, openvino)")
    parser.add_argument("--child", nargs=2, metavar=("SETTING", "CHECKPOINT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.runtime)))
        return
    from MedSAMAgentLib.segmenters.medsam2_configs import build_model

    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        checkpoint = Path(folder) / "medsam2_random.pt"
        torch.save({"model": build_model().state_dict()}, checkpoint)
        results = {}
        for label, setting in SETTINGS.items():
            command = [sys.executable, __file__, "--runtime", args.runtime, "--child", setting, str(checkpoint)]
            completed = subprocess.run(command, capture_output=True, text=True, check=True)
            results[label] = json.loads(completed.stdout.strip().splitlines()[-1])
    baseline = results[next(iter(SETTINGS))]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"MedSAM2, random weights, {device}, runtime {args.runtime}")
    for label, result in results.items():
        ratios = ", ".join(f"{key} x{result[key] / baseline[key]:.2f}" for key in result if result[key] is not None)
        values = ", ".join(f"{key} {value:.0f} MB" for key, value in result.items() if value is not None)
        print(f"{label:42s} {values}\n{'':42s} against one configuration: {ratios}")


if __name__ == "__main__":
    main()
