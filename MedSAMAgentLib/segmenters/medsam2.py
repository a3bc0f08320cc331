"""MedSAM2: sam2's video predictor with MedSAM2's 512 px Hiera-Tiny configuration.

Slices are fed from memory as a lazy sequence (windowed, resized to 512 and normalised
one at a time, when sam2 asks for them), so no JPEG round trip and flat memory in the
number of slices. The checkpoint comes from a local path, or from a hub reference looked up
on this machine first (`weights.locate`), and is loaded strictly with `weights_only=True`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..prompts import SlicePrompts
from .base import EncodingCache, Prediction, Seed, Segmenter, SliceFrames
from .checkpoints import load_weights, sha256
from .devices import autocast, resolve_device
from .runtimes import DEFAULT_RUNTIME, TORCH_F32, compiled_module, select_runtime
from .weight_files import resolve_checkpoint

CONFIG_FILE = "medsam2_hiera_t512.yaml"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OBJECT_ID = 1


def build_model(config_file: str = CONFIG_FILE) -> torch.nn.Module:
    """Instantiate the architecture from the shipped config (sam2's base plus MedSAM2's
    changes) without touching hydra's global state."""
    import sam2
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    spec = OmegaConf.load(resources.files("MedSAMAgentLib.configs").joinpath(config_file))
    config = OmegaConf.load(Path(sam2.__file__).parent / spec.base)
    for key, value in spec.overrides.items():
        OmegaConf.update(config, key, value, force_add=True)
    OmegaConf.resolve(config)
    return instantiate(config.model, _recursive_=True)


class MedSAM2(Segmenter):
    name = "medsam2"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        device: str = "auto",
        runtime: str = DEFAULT_RUNTIME,
        mixed_precision: bool = True,
        feature_cache_size: int = 4,
    ):
        self.device = resolve_device(device)
        self.mixed_precision = mixed_precision
        path = resolve_checkpoint(checkpoint)
        model = build_model()
        load_weights(model, path, "MedSAM2")
        self.checkpoint_path = path
        self.model = model.to(self.device).eval()
        self.image_size = int(self.model.image_size)
        self.runtime = select_runtime(runtime, self.device)
        self._compile_image_encoder(sha256(path))
        self._features = EncodingCache(feature_cache_size)
        _quiet_sam2()

    # -- 2D ---------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_slice(
        self,
        image: np.ndarray,
        prompts: SlicePrompts,
        previous_logits: torch.Tensor | None = None,
    ) -> Prediction:
        height, width = image.shape[:2]
        scale = torch.tensor([self.image_size / width, self.image_size / height], device=self.device)
        coords, labels = [], []
        if prompts.box is not None:
            box = prompts.box
            coords += [[box.x0, box.y0], [box.x1, box.y1]]
            labels += [2, 3]
        for point in prompts.points:
            coords.append([point.x, point.y])
            labels.append(1 if point.positive else 0)
        points = torch.tensor([coords], dtype=torch.float32, device=self.device) * scale
        point_labels = torch.tensor([labels], dtype=torch.int32, device=self.device)
        with self._precision():
            features = self._image_features(image)
            sparse, dense = self.model.sam_prompt_encoder(
                points=(points, point_labels),
                boxes=None,
                masks=previous_logits.to(self.device) if previous_logits is not None else None,
            )
            low_res, iou, _, _ = self.model.sam_mask_decoder(
                image_embeddings=features["image_embed"],
                image_pe=self.model.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=True,
                repeat_image=False,
                high_res_features=features["high_res_feats"],
            )
        best = int(torch.argmax(iou[0]))
        logits = low_res[:, best : best + 1].float()
        full = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)[0, 0]
        return Prediction(mask=(full > 0).cpu().numpy(), logits=logits, score=float(iou[0, best]))

    def logits_from_mask(self, mask: np.ndarray) -> torch.Tensor:
        """The mask at the decoder's mask-input size (a quarter of 512), as logits of +-10:
        confident enough to steer the decoder, as sam2 itself treats binary mask inputs."""
        size = self.image_size // 4
        resized = F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None], size=(size, size), mode="bilinear", align_corners=False)
        return ((resized > 0.5).float() * 20.0 - 10.0).to(self.device)

    def _image_features(self, image: np.ndarray) -> dict:
        return self._features.get(image, lambda: self._encode_features(image))

    def _encode_features(self, image: np.ndarray) -> dict:
        tensor = _to_model_input(image, self.image_size, self.device)[None]
        backbone = self.model.forward_image(tensor)
        _, vision_feats, _, feat_sizes = self.model._prepare_backbone_features(backbone)
        if self.model.directly_add_no_mem_embed:
            vision_feats[-1] = vision_feats[-1] + self.model.no_mem_embed
        maps = [feat.permute(1, 2, 0).reshape(1, -1, *size) for feat, size in zip(vision_feats, feat_sizes)]
        return {"image_embed": maps[-1], "high_res_feats": maps[:-1]}

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

    def _compile_image_encoder(self, weights_sha256: str) -> None:
        """Route sam2's image encoder through the runtime's compiled trunk and neck (the
        module, its weights and every caller stay as they are); PyTorch when the runtime is
        torch."""
        encoder = self.model.image_encoder
        example = torch.zeros(1, 3, self.image_size, self.image_size)
        compiled = compiled_module(_FeaturePyramid(encoder), [example], self.name, "image encoder", weights_sha256, self.runtime)
        if compiled is None:
            self.runtime = TORCH_F32
            return
        encoder.forward = _CompiledEncoderForward(compiled, encoder.neck.position_encoding)



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
    missing extension only skips hole filling (as MedSAM2 documents)."""
    from sam2 import sam2_video_predictor

    sam2_video_predictor.tqdm = lambda iterable, *args, **kwargs: iterable
    warnings.filterwarnings("ignore", message="(?s).*Skipping the post-processing step")


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
