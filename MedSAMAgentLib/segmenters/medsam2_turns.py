"""The agent's turns with MedSAM2, driven as MedSAM-Agent's segmentation server drove them
in training: sam2's own `SAM2ImagePredictor` (its resize and normalisation, its box and
point encoding, the previous turn's low-resolution logits as mask input, logits clamped to
+-32), one mask asked for, and the best-scoring one kept where several come back.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..prompts import SlicePrompts
from .base import Prediction

# The training server asked for a single mask (`multimask_output=False`); sam2 then falls
# back to the steadiest of its three candidates where that single one is unstable.
MULTIMASK_OUTPUT = False


class AgentTurns:
    """Turns on one configuration of MedSAM2 (`model`, a sam2 model at its image size)."""

    def __init__(self, model: torch.nn.Module, label: str):
        self.model = model
        self.image_size = int(model.image_size)
        self.label = label

    def encode(self, image: np.ndarray):
        """A `SAM2ImagePredictor` holding the encoding of an (H, W, 3) uint8 slice."""
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        predictor = SAM2ImagePredictor(self.model)
        # sam2 1.1 writes the backbone's feature sizes for 1024 px into the predictor
        predictor._bb_feat_sizes = [(self.image_size // stride,) * 2 for stride in (4, 8, 16)]
        predictor.set_image(image)
        return predictor

    def predict(self, predictor, prompts: SlicePrompts, previous_logits: torch.Tensor | None) -> Prediction:
        box = None if prompts.box is None else np.asarray(prompts.box.as_list(), dtype=np.float32)
        coords = labels = None
        if prompts.points:
            coords = np.asarray([[point.x, point.y] for point in prompts.points], dtype=np.float32)
            labels = np.asarray([1 if point.positive else 0 for point in prompts.points], dtype=np.int32)
        masks, scores, low_res = predictor.predict(
            point_coords=coords, point_labels=labels, box=box, mask_input=previous_logits, multimask_output=MULTIMASK_OUTPUT
        )
        best = int(np.argmax(scores))
        return Prediction(
            mask=masks[best] > 0,
            logits=torch.from_numpy(low_res[best])[None, None],
            score=float(scores[best]),
            configuration=self.label,
        )

    def logits_from_mask(self, mask: np.ndarray) -> torch.Tensor:
        """The mask at the decoder's mask-input size (a quarter of the image size), as logits
        of +-10: confident enough to steer the decoder, as sam2 itself treats binary masks."""
        size = self.image_size // 4
        resized = F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None], size=(size, size), mode="bilinear", align_corners=False)
        return (resized > 0.5).float() * 20.0 - 10.0
