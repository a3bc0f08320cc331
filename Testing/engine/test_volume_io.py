"""Reading volumes: formats, DICOM series choice, modality, and every unusable input."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from MedSAMAgentLib.errors import InputImageError
from MedSAMAgentLib.io.volumes import read_volume
from Testing.fixtures.anatomy import ct_head, mni_t1
from Testing.fixtures.volumes import DIRECTIONS, synthetic_image, write_dicom_series


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"])
def test_reads_every_file_format_with_its_geometry(tmp_path, suffix):
    image = synthetic_image(DIRECTIONS["oblique"])
    path = tmp_path / f"volume{suffix}"
    sitk.WriteImage(image, str(path))
    volume = read_volume(path)
    np.testing.assert_array_equal(volume.array, sitk.GetArrayFromImage(image))
    assert volume.geometry.size == image.GetSize()
    np.testing.assert_allclose(volume.geometry.spacing, image.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(volume.geometry.origin, image.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(volume.geometry.direction, image.GetDirection(), atol=1e-6)
    assert volume.modality == "CT"  # air at -1000 and tissue above +100


def test_real_mri_and_ct_files_read_with_sensible_modality():
    mri = read_volume(mni_t1()[0])
    assert mri.geometry.size == (197, 233, 189) and mri.modality == "OT"
    ct = read_volume(ct_head()[0])
    assert ct.geometry.size == (202, 202, 179)


def test_dicom_folder_picks_the_series_with_most_slices_and_says_so(tmp_path):
    big = synthetic_image(DIRECTIONS["identity"], size=(20, 18, 12), seed=1)
    small = synthetic_image(DIRECTIONS["identity"], size=(20, 18, 5), seed=2)
    write_dicom_series(big, tmp_path / "a", "1.2.826.0.1.3680043.2.1125.11", modality="MR", description="T1 axial")
    write_dicom_series(small, tmp_path / "b", "1.2.826.0.1.3680043.2.1125.12", modality="CT")
    messages = []
    volume = read_volume(tmp_path, log=messages.append)
    assert volume.geometry.size == (20, 18, 12)
    assert volume.modality == "MR"  # from the DICOM tag, not from intensities
    assert "1.2.826.0.1.3680043.2.1125.11" in messages[0] and "12 slices" in messages[0] and "1 other series" in messages[0]
    np.testing.assert_array_equal(volume.array, sitk.GetArrayFromImage(big))

    chosen = read_volume(tmp_path, series_uid="1.2.826.0.1.3680043.2.1125.12", log=messages.append)
    assert chosen.geometry.size == (20, 18, 5) and chosen.modality == "CT"
    with pytest.raises(InputImageError, match="series 9.9 is not in"):
        read_volume(tmp_path, series_uid="9.9")


def test_missing_file(tmp_path):
    with pytest.raises(InputImageError, match="input not found"):
        read_volume(tmp_path / "nothing.nii.gz")


def test_corrupt_file(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"\x1f\x8b this is not a NIfTI file")
    with pytest.raises(InputImageError, match="cannot read broken.nii.gz: the file is corrupt"):
        read_volume(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "truncated.nrrd"
    sitk.WriteImage(synthetic_image(DIRECTIONS["identity"]), str(path), useCompression=False)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(InputImageError, match="truncated.nrrd is truncated: its header declares 69120 bytes of voxel data"):
        read_volume(path)


def test_2d_image(tmp_path):
    path = tmp_path / "slice.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(100, dtype=np.int16).reshape(10, 10)), str(path))
    with pytest.raises(InputImageError, match="is a 2D image"):
        read_volume(path)


def test_single_slice_volume_is_2d(tmp_path):
    path = tmp_path / "one_slice.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(100, dtype=np.int16).reshape(1, 10, 10)), str(path))
    with pytest.raises(InputImageError, match="is a 2D image"):
        read_volume(path)


def test_4d_image(tmp_path):
    import nibabel

    path = tmp_path / "series.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.arange(5 * 4 * 3 * 2, dtype=np.int16).reshape(5, 4, 3, 2), np.eye(4)), str(path))
    with pytest.raises(InputImageError, match="is a 4D image"):
        read_volume(path)


def test_colour_image(tmp_path):
    path = tmp_path / "rgb.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6, 3), np.uint8), isVector=True), str(path))
    with pytest.raises(InputImageError, match="3 components per voxel"):
        read_volume(path)


def test_empty_volume(tmp_path):
    path = tmp_path / "zeros.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16)), str(path))
    with pytest.raises(InputImageError, match="is empty: every voxel has the value 0"):
        read_volume(path)


def test_unsupported_extension(tmp_path):
    path = tmp_path / "volume.png"
    path.write_bytes(b"png")
    with pytest.raises(InputImageError, match="unsupported file type"):
        read_volume(path)


def test_empty_dicom_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(InputImageError, match="no DICOM image series found"):
        read_volume(tmp_path)
