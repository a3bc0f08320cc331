"""MedSAM2: sam2's video predictor with MedSAM2's 512 px Hiera-Tiny configuration for
propagation; the agent's turns by default on the same weights in sam2's stock 1024 px
configuration, as MedSAM-Agent was trained (see `medsam2_configs`, `medsam2_turns`).

Slices are fed from memory as a lazy sequence (windowed, resized to 512 and normalised
one at a time, when sam2 asks for them), so no JPEG round trip and flat memory in the
number of slices. The checkpoint comes from a local path, or from a hub reference looked up
on this machine first (`weights.locate`), and is loaded strictly with `weights_only=True`.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MedSAMAgentError
from ..prompts import SlicePrompts
from . import DEFAULT_MEDSAM2_TURN_SIZE, MEDSAM2_TURN_SIZES
from .base import EncodingCache, Prediction, Seed, Segmenter, SliceFrames
from .checkpoints import load_weights, sha256
from .devices import autocast, resolve_device
from .medsam2_configs import TRAINED_TURNS_CONFIG, build_model, model_sharing_weights
from .medsam2_turns import AgentTurns
from .runtimes import DEFAULT_RUNTIME, TORCH_F32, compiled_module, select_runtime
from .weight_files import resolve_checkpoint

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OBJECT_ID = 1




class MedSAM2(Segmenter):
    name = "medsam2"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        device: str = "auto",
        runtime: str = DEFAULT_RUNTIME,
        mixed_precision: bool = True,
        feature_cache_size: int = 4,
        agent_turn_size: int = DEFAULT_MEDSAM2_TURN_SIZE,
    ):
        """`agent_turn_size`: the image size of the agent's turns (`predict_slice`), 1024
        (the configuration the agent was trained against) or 512 (MedSAM2's own, the one
        propagation runs at either way)."""
        if agent_turn_size not in MEDSAM2_TURN_SIZES:
            raise MedSAMAgentError(f"MedSAM2 runs the agent's turns at {' or '.join(map(str, MEDSAM2_TURN_SIZES))} px, not {agent_turn_size}")
        self.device = resolve_device(device)
        self.mixed_precision = mixed_precision
        self.agent_turn_size = agent_turn_size
        path = resolve_checkpoint(checkpoint)
        model = build_model()
        load_weights(model, path, "MedSAM2")
        self.checkpoint_path = path
        self.weights_sha256 = sha256(path)
        self.model = model.to(self.device).eval()
        self.image_size = int(self.model.image_size)
        self.runtime = select_runtime(runtime, self.device)
        if not self._compile_image_encoder(self.model, "image encoder"):
            self.runtime = TORCH_F32
        self._encodings = EncodingCache(feature_cache_size)  # per slice and image size: a predictor holding its encoding
        _quiet_sam2()

    @functools.cached_property
    def agent_turns(self) -> AgentTurns:
        """The configuration the agent's turns run on; the 1024 px one is built on the first
        turn (propagation alone never needs it), on the 512 px model's weights."""
        if self.agent_turn_size == self.image_size:
            return AgentTurns(self.model, f"medsam2 {self.image_size} px (MedSAM2's own configuration)")
        view = model_sharing_weights(TRAINED_TURNS_CONFIG, self.model)
        self._compile_image_encoder(view, f"image encoder {view.image_size} px")
        return AgentTurns(view, f"medsam2 {view.image_size} px (sam2.1 Hiera-Tiny, as the agent was trained)")

    # -- 2D ---------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_slice(
        self,
        image: np.ndarray,
        prompts: SlicePrompts,
        previous_logits: torch.Tensor | None = None,
    ) -> Prediction:
        turns = self.agent_turns
        with self._precision():
            predictor = self._encodings.get(image, lambda: turns.encode(image), turns.image_size)
            return turns.predict(predictor, prompts, previous_logits)

    def logits_from_mask(self, mask: np.ndarray) -> torch.Tensor:
        return self.agent_turns.logits_from_mask(mask)

    # -- 3D ---------------------------------------------------------------------------
    def track(
        self,
        frames: SliceFrames,
        seed: Seed,
        locked: Mapping[int, np.ndarray],
        stop_index: int,
        continues: bool = False,
        conditioning: Sequence[Seed] = (),
    ) -> Iterator[tuple[int, np.ndarray, float | None]]:
        key = seed.slice_index
        first, last = min(key, stop_index), max(key, stop_index)
        video = _VideoFrames(frames, first, last, self.image_size, self.device)
        height, width = frames.image_shape
        predictor = self.model
        with torch.inference_mode(), self._precision():
            state = _inference_state(video, height, width, self.device)
            for slice_index, mask in locked.items():
                if first <= slice_index <= last and slice_index != key:
                    predictor.add_new_mask(state, slice_index - first, OBJECT_ID, torch.from_numpy(mask))
            for conditioning_seed in (*conditioning, seed):  # every seed is a conditioning frame
                frame_index = conditioning_seed.slice_index - first
                if not 0 <= frame_index <= last - first:
                    continue
                if conditioning_seed.mask is not None:
                    predictor.add_new_mask(state, frame_index, OBJECT_ID, torch.from_numpy(conditioning_seed.mask))
                else:
                    self._add_prompts(state, frame_index, conditioning_seed.prompts)
            for frame_index, _, logits in predictor.propagate_in_video(
                state, start_frame_idx=key - first, reverse=stop_index < key
            ):
                yield frame_index + first, (logits[0, 0] > 0).cpu().numpy(), None

    def _add_prompts(self, state: dict, frame_index: int, prompts: SlicePrompts) -> None:
        points = [[p.x, p.y] for p in prompts.points] or None
        labels = [1 if p.positive else 0 for p in prompts.points] or None
        box = prompts.box.as_list() if prompts.box is not None else None
        self.model.add_new_points_or_box(state, frame_index, OBJECT_ID, points=points, labels=labels, box=box)

    def _precision(self):
        return autocast(self.device, self.runtime.bf16) if self.mixed_precision else contextlib.nullcontext()

    def _compile_image_encoder(self, model: torch.nn.Module, part: str) -> bool:
        """Route `model`'s image encoder through the runtime's compiled trunk and neck, at
        the model's image size (the module, its weights and every caller stay as they are);
        False where it stays in PyTorch (runtime torch, or a failed conversion)."""
        encoder = model.image_encoder
        example = torch.zeros(1, 3, model.image_size, model.image_size)
        compiled = compiled_module(_FeaturePyramid(encoder), [example], self.name, part, self.weights_sha256, self.runtime)
        if compiled is None:
            return False
        encoder.forward = _CompiledEncoderForward(compiled, encoder.neck.position_encoding)
        return True



class _FeaturePyramid(torch.nn.Module):
    """sam2's image encoder reduced to its feature maps, as a tuple (what gets converted; the
    position encodings depend only on the maps' shapes)."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.encoder(image)["backbone_fpn"])


class _CompiledEncoderForward:
    """sam2's image encoder's forward: feature maps from the compiled runtime, position
    encodings from sam2's own module, in the dictionary sam2 expects."""

    def __init__(self, compiled, position_encoding: torch.nn.Module):
        self.compiled = compiled
        self.position_encoding = position_encoding

    def __call__(self, image: torch.Tensor) -> dict:
        features = [feature.to(image.device) for feature in self.compiled(image)]
        positions = [self.position_encoding(feature).to(feature.dtype) for feature in features]
        return {"vision_features": features[-1], "vision_pos_enc": positions, "backbone_fpn": features}


def _quiet_sam2() -> None:
    """sam2 draws its own tqdm bar per propagation and warns on every frame when its
    optional CUDA extension is absent; progress is reported by the caller instead, and the
    missing extension only skips hole filling (as MedSAM2 documents). Its image predictor
    scripts its resize with `torch.jit.script`, which this torch calls deprecated: nothing
    for the user to act on."""
    from sam2 import sam2_video_predictor

    sam2_video_predictor.tqdm = lambda iterable, *args, **kwargs: iterable
    warnings.filterwarnings("ignore", message="(?s).*Skipping the post-processing step")
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)


class _VideoFrames:
    """The slices first..last as sam2 video frames, prepared one at a time on request."""

    def __init__(self, frames: SliceFrames, first: int, last: int, image_size: int, device: torch.device):
        self.frames, self.first, self.last = frames, first, last
        self.image_size, self.device = image_size, device

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return _to_model_input(self.frames[self.first + index], self.image_size, self.device)


def _to_model_input(image: np.ndarray, image_size: int, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, S, S) float, resized and ImageNet-normalised as MedSAM2 was trained."""
    tensor = torch.tensor(image).to(device).permute(2, 0, 1)[None].float() / 255.0
    tensor = F.interpolate(tensor, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=device)[:, None, None]
    return (tensor[0] - mean) / std


def _inference_state(images, height: int, width: int, device: torch.device) -> dict:
    """sam2 1.1's video inference state, for frames held in memory instead of a folder."""
    return {
        "images": images,
        "num_frames": len(images),
        "offload_video_to_cpu": False,
        "offload_state_to_cpu": False,
        "video_height": height,
        "video_width": width,
        "device": device,
        "storage_device": device,
        "point_inputs_per_obj": {},
        "mask_inputs_per_obj": {},
        "cached_features": {},
        "constants": {},
        "obj_id_to_idx": OrderedDict(),
        "obj_idx_to_id": OrderedDict(),
        "obj_ids": [],
        "output_dict_per_obj": {},
        "temp_output_dict_per_obj": {},
        "frames_tracked_per_obj": {},
    }
