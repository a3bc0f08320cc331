"""Volume files cut short or damaged are refused with one line, in every format ITK would
otherwise read with zeros in place of the missing voxels; NaN and infinite voxels follow
one stated rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from MedSAMAgentLib.errors import InputImageError
from MedSAMAgentLib.io.checks import usable_voxels
from MedSAMAgentLib.io.volumes import read_volume
from Testing.fixtures.volumes import DIRECTIONS, synthetic_image


def written(tmp_path: Path, name: str, compress: bool) -> tuple[Path, Path]:
    """(the file to read, the file holding the voxels)."""
    path = tmp_path / name
    sitk.WriteImage(synthetic_image(DIRECTIONS["oblique"]), str(path), useCompression=compress)
    if name.endswith((".nhdr", ".mhd")):
        data = [p for p in tmp_path.iterdir() if p != path]
        assert len(data) == 1
        return path, data[0]
    return path, path


FORMATS = [
    ("volume.nii", False), ("volume.nii.gz", True), ("volume.nrrd", False), ("volume.nrrd", True),
    ("volume.nhdr", False), ("volume.nhdr", True), ("volume.mha", False), ("volume.mha", True),
    ("volume.mhd", False), ("volume.mhd", True),
]


@pytest.mark.parametrize("name, compress", FORMATS)
def test_complete_files_read(tmp_path, name, compress):
    path, _ = written(tmp_path, name, compress)
    np.testing.assert_array_equal(read_volume(path).array, sitk.GetArrayFromImage(synthetic_image(DIRECTIONS["oblique"])))


@pytest.mark.parametrize("name, compress", FORMATS)
def test_truncated_files_are_refused(tmp_path, name, compress):
    path, data = written(tmp_path, name, compress)
    content = data.read_bytes()
    data.write_bytes(content[: len(content) * 2 // 3])
    with pytest.raises(InputImageError, match=rf"{data.name} is truncated"):
        read_volume(path)


@pytest.mark.parametrize("name, compress", [("volume.nii.gz", True), ("volume.nrrd", True), ("volume.mha", True)])
def test_damaged_compressed_data_is_refused(tmp_path, name, compress):
    path, data = written(tmp_path, name, compress)
    content = bytearray(data.read_bytes())
    middle = len(content) * 3 // 4
    content[middle : middle + 64] = bytes(64)
    data.write_bytes(bytes(content))
    with pytest.raises(InputImageError, match=rf"{data.name} is truncated or damaged"):
        read_volume(path)


def test_missing_detached_data_file_is_named(tmp_path):
    path, data = written(tmp_path, "volume.nhdr", False)
    data.unlink()
    with pytest.raises(InputImageError, match=rf"volume.nhdr names its voxel data file {data.name}, which is missing"):
        read_volume(path)


def test_truncated_nifti_gives_the_byte_counts(tmp_path):
    path, _ = written(tmp_path, "volume.nii", False)
    expected = path.stat().st_size
    path.write_bytes(path.read_bytes()[:10000])
    with pytest.raises(InputImageError, match=f"declares {expected} bytes of header and voxel data, the file holds 10000"):
        read_volume(path)


def test_nan_and_infinite_voxels_become_the_lowest_and_highest_finite_values(tmp_path):
    array = np.linspace(-100.0, 300.0, 4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    array[0, 0, :3] = np.nan
    array[1, 1, 1] = -np.inf
    array[2, 2, 2] = np.inf
    path = tmp_path / "nan.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    notes = []
    volume = read_volume(path, log=notes.append)
    finite = np.isfinite(array)
    low, high = array[finite].min(), array[finite].max()
    assert volume.array[0, 0, 0] == low and volume.array[1, 1, 1] == low and volume.array[2, 2, 2] == high
    np.testing.assert_array_equal(volume.array[finite], array[finite])
    expected = (f"note: nan.nrrd has 3 NaN, 1 -inf, 1 +inf voxels; NaN and -inf were set to its lowest finite value ({low:g}), "
                f"+inf to its highest ({high:g})")
    assert notes == [expected]


def test_usable_voxels_never_changes_its_input_and_refuses_no_finite_voxel():
    array = np.array([[[np.nan, 1.0], [2.0, 3.0]]], np.float32)
    usable = usable_voxels(array, "x", log=None)
    assert np.isnan(array[0, 0, 0]) and usable[0, 0, 0] == 1.0
    with pytest.raises(InputImageError, match="holds no finite voxel"):
        usable_voxels(np.full((2, 2, 2), np.nan, np.float32), "all-nan", log=None)
