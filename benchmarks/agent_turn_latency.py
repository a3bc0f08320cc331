"""Turn latency of the `qwen` policy: the full Qwen3-VL-8B architecture with random weights
(no download), on a GPU; and of the MedSAM2 segmenter's side of a turn at 1024 px (the
configuration the agent was trained against, the default) against 512 px (MedSAM2's own),
on the GPU when there is one, else on the CPU.

Baseline: the official inference setting (fp32 weights, eager attention). Ours: bf16 with
SDPA attention, and the same plus prompt-lookup drafting. Same conversation (system prompt,
two earlier turns with their 512x512 views, the current view) and the same number of new
tokens (`--tokens`, forced, since random weights never emit an end token) for every setting,
in one process. Prints seconds per turn and the ratios against the baseline.

Random weights never repeat the prompt, so prompt lookup gains nothing here; with the real
model, tool calls copy the schema and earlier calls from the prompt and drafts are accepted.

MedSAM2 (random weights, real architecture): a turn on a new slice (image encoder, prompt
encoder, mask decoder) and a follow-up on the same slice (its encoding cached), median of
`--repeats`, both sizes in one process; the ratio is 1024 against 512.

    python benchmarks/agent_turn_latency.py              # on a CUDA GPU, ~35 GB free memory
    python benchmarks/agent_turn_latency.py --small      # the same code path on a tiny model (CPU)
    python benchmarks/agent_turn_latency.py --segmenter-only   # MedSAM2's turns alone (CPU or GPU)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from MedSAMAgentLib.agent.loop import build_messages  # noqa: E402
from MedSAMAgentLib.agent.protocol import FOLLOW_UP_TEXT, first_turn_text, tool_call_text  # noqa: E402
from MedSAMAgentLib.agent.view import Letterbox  # noqa: E402
from MedSAMAgentLib.prompts import Box, Point, SlicePrompts  # noqa: E402
from Testing.fixtures.tiny_qwen3vl import build_tiny_qwen3vl  # noqa: E402

# Qwen3-VL-8B-Instruct, the MedSAM-Agent base model.
FULL_TEXT = dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                 num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=262144,
                 rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": [24, 20, 20],
                                  "mrope_interleaved": True})
FULL_VISION = dict(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16, out_hidden_size=4096,
                   patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
                   deepstack_visual_indexes=[8, 16, 24])


def conversation():
    rng = np.random.default_rng(0)
    slice_rgb = np.repeat(rng.integers(0, 255, (512, 512, 1), dtype=np.uint8), 3, axis=-1)
    letterbox = Letterbox.fit(slice_rgb.shape[:2])
    mask = np.zeros((512, 512), bool)
    mask[180:320, 150:260] = True
    views = [letterbox.image(slice_rgb), letterbox.image(slice_rgb, mask), letterbox.image(slice_rgb, mask)]
    history = [
        (views[0], first_turn_text("right kidney in abdomen CT"), tool_call_text("add_bbox", {"bbox_2d": [290, 350, 510, 625]})),
        (views[1], FOLLOW_UP_TEXT, tool_call_text("add_point", {"point_2d": [400, 500], "point_type": "positive"})),
    ]
    return build_messages(history, views[2], FOLLOW_UP_TEXT)


def build(small: bool, folder: Path, dtype, attention: str, device):
    from transformers import AutoProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    tiny = build_tiny_qwen3vl(folder / "tiny")
    processor = AutoProcessor.from_pretrained(tiny, local_files_only=True)
    processor.image_processor.size = {"shortest_edge": 256 * 256, "longest_edge": 512 * 512}  # 256 tokens per 512x512 view
    if small:
        config = Qwen3VLConfig.from_pretrained(tiny)
    else:
        small_config = Qwen3VLConfig.from_pretrained(tiny)
        config = Qwen3VLConfig(
            text_config=FULL_TEXT, vision_config=FULL_VISION,
            image_token_id=small_config.image_token_id, video_token_id=small_config.video_token_id,
            vision_start_token_id=small_config.vision_start_token_id, vision_end_token_id=small_config.vision_end_token_id,
        )
    config._attn_implementation = attention
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration(config).to(dtype).eval()
    return model, processor


def time_turns(model, processor, messages, tokens: int, repeats: int, lookup: bool, device) -> float:
    from qwen_vl_utils import process_vision_info

    options = dict(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
    if lookup:
        options["prompt_lookup_num_tokens"] = 10
    seconds = []
    for repeat in range(repeats + 1):  # the first run warms up kernels and caches
        synchronize(device)
        started = time.perf_counter()
        text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        images, videos = process_vision_info(messages, image_patch_size=16)
        inputs = processor(text=[text], images=images, videos=videos, padding=True, return_tensors="pt").to(device)
        with torch.inference_mode():
            model.generate(**inputs, **options)
        synchronize(device)
        if repeat:
            seconds.append(time.perf_counter() - started)
    return float(np.median(seconds)), int(inputs["input_ids"].shape[1])


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_segmenter_turns(folder: Path, device, runtime: str, repeats: int) -> None:
    """MedSAM2's side of a turn at 512 and at 1024 px: new slice, then a follow-up."""
    from MedSAMAgentLib.segmenters.medsam2 import MedSAM2, build_model

    torch.manual_seed(0)
    checkpoint = folder / "medsam2_random.pt"
    torch.save({"model": build_model().state_dict()}, checkpoint)
    rng = np.random.default_rng(0)
    slices = [np.repeat(rng.integers(0, 255, (512, 512, 1), dtype=np.uint8), 3, axis=-1) for _ in range(repeats + 1)]
    box, click = SlicePrompts(box=Box(150, 180, 260, 320)), SlicePrompts(points=(Point(200, 250, positive=False),))
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    results = {}
    for size in (512, 1024):
        segmenter = MedSAM2(checkpoint, device=str(device), runtime=runtime, agent_turn_size=size)
        new_slice, follow_up = [], []
        for repeat, image in enumerate(slices):  # the first slice warms up kernels and converts the encoder
            synchronize(device)
            started = time.perf_counter()
            first = segmenter.predict_slice(image, box)
            synchronize(device)
            middle = time.perf_counter()
            segmenter.predict_slice(image, click, previous_logits=first.logits)
            synchronize(device)
            if repeat:
                new_slice.append(middle - started)
                follow_up.append(time.perf_counter() - middle)
        results[size] = float(np.median(new_slice)), float(np.median(follow_up))
        print(f"medsam2 turn at {size:4d} px: new slice {results[size][0]:.3f} s, follow-up {results[size][1]:.3f} s "
              f"({name}, runtime {segmenter.runtime.name} {segmenter.runtime.precision})", flush=True)
        del segmenter
    for index, label in enumerate(("new slice", "follow-up")):
        print(f"ratio medsam2 turn, {label}, 1024 / 512 px: {results[1024][index] / results[512][index]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny architecture: checks the script, measures nothing useful")
    parser.add_argument("--tokens", type=int, default=40, help="new tokens per turn (a tool call is about 30-40)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--segmenter-only", action="store_true", help="time MedSAM2's turns alone (CPU or GPU)")
    parser.add_argument("--runtime", default="auto", help="MedSAM2's runtime on the CPU (auto, torch, openvino)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as folder:
        time_segmenter_turns(Path(folder), device, args.runtime, args.repeats)
    if args.segmenter_only:
        return
    if device.type != "cuda" and not args.small:
        raise SystemExit("the full 8B benchmark needs a CUDA GPU; use --small to check the script on the CPU")
    messages = conversation()
    settings = [
        ("official: fp32, eager attention", torch.float32, "eager", False),
        ("ours: bf16, SDPA", torch.bfloat16, "sdpa", False),
        ("ours: bf16, SDPA, prompt lookup", torch.bfloat16, "sdpa", True),
    ]
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, dtype, attention, lookup in settings:
            model, processor = build(args.small, Path(folder), dtype, attention, device)
            results[label], prompt_tokens = time_turns(model, processor, messages, args.tokens, args.repeats, lookup, device)
            name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
            print(f"{label:34s} {results[label]:.3f} s per turn ({prompt_tokens} prompt tokens, {args.tokens} new, {name})", flush=True)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    baseline = results[settings[0][0]]
    for label, *_ in settings[1:]:
        print(f"ratio {label} / official: {results[label] / baseline:.3f} (speed-up {baseline / results[label]:.2f}x)")


if __name__ == "__main__":
    main()
