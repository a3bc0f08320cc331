"""Geometry survives every storage order and format, to the voxel.

Volumes with identity, flipped, permuted and oblique direction matrices and anisotropic
spacing go in as NIfTI, NRRD and a DICOM series; the command line segments them with a
stand-in model that fills the prompt box exactly, so every output voxel can be predicted
from the index semantics of --slice/--box alone (and, for --box-ras, from physical points).
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from MedSAMAgentLib import cli, segmenters
from Testing.fixtures.segmenters import BoxFillSegmenter
from Testing.fixtures.volumes import DIRECTIONS, synthetic_image, write_dicom_series

REACH = 2
LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])


@pytest.fixture
def boxfill(monkeypatch):
    monkeypatch.setattr(segmenters, "create_segmenter", lambda *args, **kwargs: BoxFillSegmenter(reach=REACH))


def write_input(image: sitk.Image, fmt: str, folder) -> tuple[str, sitk.Image]:
    """Write the image; return its path and the image as a reader sees it back."""
    if fmt == "dicom":
        path = write_dicom_series(image, folder / "dicom", "1.2.826.0.1.3680043.2.1125.7")
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path)))
        return str(path), reader.Execute()
    path = folder / f"input.{fmt}"
    sitk.WriteImage(image, str(path))
    return str(path), sitk.ReadImage(str(path))


def expected_mask(reference: sitk.Image, key: int, low: tuple[int, int], high: tuple[int, int]) -> np.ndarray:
    """Index semantics of the command line, derived independently of the engine: the axial
    slice axis is the index axis most aligned with S; the box gives the two other indices
    in index order."""
    direction = np.array(reference.GetDirection()).reshape(3, 3)
    slice_axis = int(np.argmax(np.abs(direction[2])))
    in_plane = [a for a in range(3) if a != slice_axis]
    ranges = {slice_axis: (max(0, key - REACH), min(reference.GetSize()[slice_axis] - 1, key + REACH))}
    ranges[in_plane[0]] = (low[0], high[0])
    ranges[in_plane[1]] = (low[1], high[1])
    mask = np.zeros(reference.GetSize()[::-1], np.uint8)
    mask[tuple(slice(ranges[a][0], ranges[a][1] + 1) for a in (2, 1, 0))] = 1
    return mask


def corner_ras(reference: sitk.Image, slice_axis: int, key: int, in_plane, values) -> list[float]:
    index = [0, 0, 0]
    index[slice_axis] = key
    index[in_plane[0]], index[in_plane[1]] = values
    return list(np.array(reference.TransformIndexToPhysicalPoint(index)) * LPS_TO_RAS)


def assert_same_geometry(output: sitk.Image, reference: sitk.Image) -> None:
    assert output.GetSize() == reference.GetSize()
    np.testing.assert_allclose(output.GetSpacing(), reference.GetSpacing(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(output.GetOrigin(), reference.GetOrigin(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(output.GetDirection(), reference.GetDirection(), rtol=0, atol=1e-6)


CASES = [
    (fmt, orientation, output_suffix)
    for fmt in ("nii.gz", "nrrd", "dicom")
    for orientation in DIRECTIONS
    for output_suffix in ((".seg.nrrd", ".nii.gz", ".nrrd") if fmt != "dicom" else (".seg.nrrd",))
]


@pytest.mark.parametrize("fmt, orientation, output_suffix", CASES)
def test_box_lands_on_the_right_voxels(tmp_path, boxfill, fmt, orientation, output_suffix):
    path, reference = write_input(synthetic_image(DIRECTIONS[orientation]), fmt, tmp_path)
    direction = np.array(reference.GetDirection()).reshape(3, 3)
    slice_axis = int(np.argmax(np.abs(direction[2])))
    in_plane = [a for a in range(3) if a != slice_axis]
    key = reference.GetSize()[slice_axis] // 2
    low = (3, 5)
    high = (reference.GetSize()[in_plane[0]] - 4, reference.GetSize()[in_plane[1]] - 7)
    expected = expected_mask(reference, key, low, high)

    by_index = tmp_path / f"by_index{output_suffix}"
    status = cli.main(["segment", path, "-o", str(by_index), "--slice", str(key), "--box", *map(str, (*low, *high))])
    assert status == 0
    output = sitk.ReadImage(str(by_index))
    assert_same_geometry(output, reference)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(output), expected)

    by_ras = tmp_path / f"by_ras{output_suffix}"
    corners = corner_ras(reference, slice_axis, key, in_plane, low) + corner_ras(reference, slice_axis, key, in_plane, high)
    status = cli.main(["segment", path, "-o", str(by_ras), "--box-ras", *map(str, corners)])
    assert status == 0
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(by_ras))), expected)


def test_nifti_output_keeps_the_input_header(tmp_path, boxfill):
    import nibabel

    path, reference = write_input(synthetic_image(DIRECTIONS["oblique"]), "nii.gz", tmp_path)
    output = tmp_path / "out.nii.gz"
    assert cli.main(["segment", path, "-o", str(output), "--slice", "12", "--box", "2", "2", "20", "20"]) == 0
    source, result = nibabel.load(path), nibabel.load(str(output))
    np.testing.assert_array_equal(result.affine, source.affine)
    np.testing.assert_array_equal(result.header.get_qform(), source.header.get_qform())
    np.testing.assert_array_equal(result.header.get_sform(), source.header.get_sform())
    assert result.get_data_dtype() == np.uint8


@pytest.mark.parametrize("view", ["axial", "coronal", "sagittal"])
def test_views_follow_patient_axes_whatever_the_storage(phantom, view):
    """The same anatomy stored flipped and permuted gives the same display slices (slice
    numbers follow the stored axis, so a reversed slice axis counts from the other end)."""
    from MedSAMAgentLib.io.volumes import Geometry, Volume
    from MedSAMAgentLib.segmenters.base import slice_frames

    volume, _ = phantom
    permutation = (1, 0, 2)  # store j as i (reversed) and i as j
    array = np.transpose(volume.array, (0, 2, 1))[:, :, ::-1]
    direction = volume.geometry.direction_matrix[:, list(permutation)]
    direction[:, 0] *= -1
    size = tuple(volume.geometry.size[a] for a in permutation)
    spacing = tuple(volume.geometry.spacing[a] for a in permutation)
    geometry = volume.geometry
    first_voxel = np.array(geometry.origin) + geometry.direction_matrix[:, 1] * geometry.spacing[1] * (geometry.size[1] - 1)
    stored = Volume(
        array=np.ascontiguousarray(array),
        geometry=Geometry(size=size, spacing=spacing, origin=tuple(first_voxel), direction=tuple(direction.ravel())),
        modality="CT",
    )
    original = slice_frames(volume, view)
    reordered = slice_frames(stored, view)
    assert len(original) == len(reordered)
    normal = {"axial": 2, "coronal": 1, "sagittal": 0}[view]
    same_way = np.sign(direction[normal, reordered.plane.slice_axis]) == np.sign(
        geometry.direction_matrix[normal, original.plane.slice_axis]
    )
    for index in (0, len(original) // 2, len(original) - 1):
        other = index if same_way else len(original) - 1 - index
        np.testing.assert_array_equal(original[index], reordered[other])
