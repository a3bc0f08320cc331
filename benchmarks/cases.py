"""The propagation benchmark's cases: real anatomy with reference labels, each along one
slicing axis, in two sets that never share a structure.

- `BENCHMARK`: what rules and designs are chosen on (and cross-validated over, in folds).
- `CHECK`: structures the benchmark never shows, looked at only to see whether a choice
  holds; never to choose.

A case is named `SOURCE-STRUCTURE[@VIEW]`: `ct-aorta` (TotalSegmentator's abdominal CT,
axial), `mr-liver@coronal`, `lung1` (pyradiomics' lesions), `ct-head` and `mni` (whole
brains). Labels: expert drawings for the lesions; TotalSegmentator's model output for the
CT and MR structures (the CT's checked by its authors); tissue maps for the brains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from MedSAMAgentLib.io.volumes import read_volume
from MedSAMAgentLib.segmenters.base import SliceFrames, slice_frames
from Testing.fixtures.anatomy import LESIONS, ct_head, labelled_structure, lesion, mni_t1

BENCHMARK = (
    "lung1", "lung2", "brain1", "brain2", "ct-head", "mni",
    "ct-liver", "ct-spleen", "ct-kidney_right", "ct-kidney_left", "ct-stomach", "ct-gallbladder", "ct-duodenum", "ct-aorta",
    "ct-portal_vein_and_splenic_vein", "ct-urinary_bladder", "ct-vertebrae_L3", "ct-femur_left", "ct-iliopsoas_left",
    "ct-gluteus_medius_right",
    "mr-spleen", "mr-kidney_right", "mr-kidney_left", "mr-liver", "mr-aorta", "mr-stomach",
    "ct-kidney_left@coronal", "ct-liver@coronal", "ct-iliopsoas_right@coronal", "mr-liver@coronal", "mr-spleen@coronal",
    "ct-spleen@sagittal", "ct-vertebrae_L3@sagittal",
)
CHECK = (
    "breast1", "ct-pancreas", "ct-inferior_vena_cava", "ct-sacrum", "ct-vertebrae_L1", "ct-hip_right", "ct-autochthon_right",
    "ct-gluteus_maximus_left", "ct-iliac_vena_left", "mr-pancreas", "mr-inferior_vena_cava", "mr-gallbladder",
    "mr-portal_vein_and_splenic_vein", "mr-autochthon_left", "ct-hip_right@coronal", "mr-pancreas@coronal",
    "ct-pancreas@sagittal",
)
# The 13 cases of the earlier benchmark, for comparison with its figures.
EARLIER = (
    "lung1", "lung2", "brain1", "brain2", "ct-head", "mni", "ct-liver", "ct-spleen", "ct-kidney_right", "ct-kidney_left",
    "mr-spleen", "mr-kidney_right", "mr-kidney_left",
)


@dataclass(frozen=True)
class Case:
    name: str
    frames: SliceFrames
    truth: np.ndarray  # (slices, rows, cols) bool, display orientation along the case's view

    @property
    def extent(self) -> tuple[int, int]:
        present = np.flatnonzero(self.truth.any(axis=(1, 2)))
        return int(present[0]), int(present[-1])

    @property
    def largest_slice(self) -> int:
        return int(np.argmax(self.truth.sum(axis=(1, 2))))


def load_case(name: str) -> Case:
    source, _, view = name.partition("@")
    view = view or "axial"
    window = None
    if source == "ct-head":
        (path, reference), window = ct_head(), "brain"
    elif source == "mni":
        path, reference = mni_t1()
    elif source in LESIONS:
        path, reference = lesion(source)
    else:
        modality, structure = source.split("-", 1)
        path, reference = labelled_structure(modality, structure)
    frames = slice_frames(read_volume(path, log=lambda _: None), view, window)
    return Case(name, frames, frames.plane.to_display(reference))


def folds(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Two folds that split every kind of case (alternating through the list, which is
    grouped by kind): choose on one, report on the other, then the other way round."""
    return names[0::2], names[1::2]
