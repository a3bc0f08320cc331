"""DICOM series with awkward geometry: every voxel lands at its real position (after
resampling, with a note) or the series is refused with the positions named."""

from __future__ import annotations

import numpy as np
import pytest

from MedSAMAgentLib.errors import InputImageError
from MedSAMAgentLib.io.volumes import read_volume
from Testing.fixtures.dicom_series import AXIAL, SeriesWriter, anatomy_series, pixel_positions, tilted_axial

SHAPE = (24, 30)  # rows, columns
PIXEL_SPACING = (0.8, 1.0)  # between rows, between columns
BOX = np.array([[2.0, 3.0, 4.0], [19.0, 13.0, 14.5]])  # LPS mm, opposite corners of a bright box


def scene_value(points: np.ndarray) -> np.ndarray:
    """What the scanner sees at each LPS point: a linear ramp (exact under linear
    interpolation) plus a bright box."""
    ramp = 3.0 * points[..., 0] - 2.0 * points[..., 1] + 5.0 * points[..., 2]
    inside = np.all((points >= BOX[0]) & (points <= BOX[1]), axis=-1)
    return ramp + 2000.0 * inside


def write_scene(folder, positions, orientations, **kwargs) -> SeriesWriter:
    writer = SeriesWriter(folder, pixel_spacing=PIXEL_SPACING, **kwargs)
    for position, orientation in zip(positions, orientations):
        writer.add(scene_value(pixel_positions(position, orientation, PIXEL_SPACING, SHAPE)), position, orientation)
    return writer


def voxel_points(volume) -> np.ndarray:
    k, j, i = np.meshgrid(*[np.arange(n) for n in volume.array.shape], indexing="ij")
    index = np.stack([i, j, k, np.ones_like(i)], axis=-1).astype(float)
    return (index @ volume.geometry.ijk_to_lps().T)[..., :3]


def assert_every_voxel_in_place(volume):
    """Covered voxels hold the scene's value at their own position: the ramp to rounding,
    and the box where the voxel is well inside it (not interpolated across its edge)."""
    points = voxel_points(volume)
    covered = volume.array > volume.array.min()
    inside = np.all((points >= BOX[0] + 1.6) & (points <= BOX[1] - 1.6), axis=-1)
    outside = np.any((points < BOX[0] - 2.6) | (points > BOX[1] + 2.6), axis=-1)
    expected = scene_value(points)
    assert covered.mean() > 0.6
    clear = covered & (inside | outside)
    np.testing.assert_allclose(volume.array[clear], expected[clear], atol=1.0)
    assert (volume.array[inside] > 1500).all() and inside.sum() > 100
    assert np.abs(np.linalg.det(volume.geometry.direction_matrix) - 1) < 1e-9


def axial_positions(depths, shift_per_mm=(0.0, 0.0)):
    return [np.array([-4.0 + shift_per_mm[0] * z, -6.0 + shift_per_mm[1] * z, z]) for z in depths]


def test_regular_series_is_read_as_it_is(tmp_path):
    depths = np.arange(12) * 1.5
    write_scene(tmp_path, axial_positions(depths), [AXIAL] * 12)
    notes = []
    volume = read_volume(tmp_path, log=notes.append)
    assert volume.geometry.size == (30, 24, 12) and volume.geometry.spacing == pytest.approx((1.0, 0.8, 1.5))
    assert not any(note.startswith("note:") for note in notes) and not volume.dicom.resampled
    assert_every_voxel_in_place(volume)


def test_missing_slice_is_interpolated_and_the_others_kept_exactly(tmp_path):
    keep = [k for k in range(16) if k != 7]
    write_scene(tmp_path, axial_positions(np.array(keep) * 2.0), [AXIAL] * len(keep))
    notes = []
    volume = read_volume(tmp_path, log=notes.append)
    assert volume.geometry.size[2] == 16 and volume.geometry.spacing[2] == pytest.approx(2.0)
    note = notes[-1]
    assert "slices missing" in note and "4 mm between 12.00 and 16.00 mm" in note and "16 slices 2 mm apart" in note
    assert volume.dicom.resampled
    assert_every_voxel_in_place(volume)


def test_real_anatomy_series_with_a_missing_slice_keeps_every_acquired_slice(tmp_path):
    keep = [k for k in range(90) if k != 40]
    _, atlas, _ = anatomy_series(tmp_path / "series", keep=keep)
    volume = read_volume(tmp_path / "series", log=lambda _: None)
    assert volume.geometry.size == atlas.geometry.size
    np.testing.assert_allclose(volume.geometry.ijk_to_lps(), atlas.geometry.ijk_to_lps(), atol=1e-4)
    np.testing.assert_array_equal(volume.array[keep], atlas.array[keep])
    between = (atlas.array[39].astype(float) + atlas.array[41]) / 2
    assert np.abs(volume.array[40] - between).max() <= 0.5


def test_irregular_spacing_is_resampled_onto_the_smallest_gap(tmp_path):
    depths = np.array([0.0, 1.0, 2.0, 3.5, 5.0, 6.0, 7.0, 8.0, 9.5, 11.0, 12.0])
    write_scene(tmp_path, axial_positions(depths), [AXIAL] * len(depths))
    notes = []
    volume = read_volume(tmp_path, log=notes.append)
    assert "irregular slice spacing" in notes[-1] and "1.5 mm between 2.00 and 3.50 mm" in notes[-1]
    assert volume.geometry.size[2] == 13 and volume.geometry.spacing[2] == pytest.approx(1.0)
    assert_every_voxel_in_place(volume)


def test_gantry_tilt_is_resampled_onto_an_orthogonal_grid(tmp_path):
    orientation = tilted_axial(20.0)
    depths = np.arange(14) * 1.25
    write_scene(tmp_path, axial_positions(depths), [orientation] * 14)  # the table moves along z: sheared
    notes = []
    volume = read_volume(tmp_path, log=notes.append)
    assert "gantry tilt of 20.0 degrees" in notes[-1]
    np.testing.assert_allclose(volume.geometry.direction_matrix[:, 2], np.cross(orientation[:3], orientation[3:]), atol=1e-6)
    assert volume.geometry.size[1] > SHAPE[0]  # grown to hold the sheared slices
    assert_every_voxel_in_place(volume)


def test_mixed_orientations_are_refused_with_the_odd_slices_positions(tmp_path):
    sagittal = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    positions = axial_positions(np.arange(10) * 2.0) + [np.array([5.0, -6.0, 20.0]), np.array([8.0, -6.0, 20.0])]
    write_scene(tmp_path, positions, [AXIAL] * 10 + [sagittal] * 2)
    with pytest.raises(InputImageError, match=r"mixes slice orientations \(10 with orientation \(1, 0, 0, 0, 1, 0\); "
                                              r"2 with orientation \(0, 1, 0, 0, 0, -1\) at \(5.0, -6.0, 20.0\); \(8.0, -6.0, 20.0\) mm\)"):
        read_volume(tmp_path)


def test_too_large_a_gap_is_refused_with_its_positions(tmp_path):
    depths = [0.0, 2.0, 4.0, 6.0, 16.0, 18.0, 20.0]
    write_scene(tmp_path, axial_positions(depths), [AXIAL] * len(depths))
    with pytest.raises(InputImageError, match="has slices missing: no slice between 6.00 to 16.00 mm"):
        read_volume(tmp_path)


def test_two_slices_at_one_position_are_refused(tmp_path):
    write_scene(tmp_path, axial_positions([0.0, 2.0, 4.0, 4.0, 6.0]), [AXIAL] * 5)
    with pytest.raises(InputImageError, match=r"several slices at one position \(4.00 mm"):
        read_volume(tmp_path)


def test_a_localizer_in_the_series_is_left_out(tmp_path):
    writer = write_scene(tmp_path, axial_positions(np.arange(10) * 2.0), [AXIAL] * 10)
    coronal = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    writer.add(np.full(SHAPE, 40.0), (-4.0, 3.0, 30.0), coronal, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    notes = []
    volume = read_volume(tmp_path, log=notes.append)
    assert volume.geometry.size == (30, 24, 10) and "(10 slices" in notes[0]
    assert any("1 localizer/scout image(s)" in note for note in notes)
    assert volume.dicom.files == tuple(writer.paths[:10])
    assert_every_voxel_in_place(volume)


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_multi_frame_object_loads_like_its_series(tmp_path, modality):
    import highdicom

    from Testing.fixtures.dicom_series import read_datasets

    writer, atlas, _ = anatomy_series(tmp_path / "series", step=3, modality=modality)
    datasets = read_datasets(writer.paths[::-1])  # frames stored in reverse order
    convert = highdicom.legacy.LegacyConvertedEnhancedCTImage if modality == "CT" else highdicom.legacy.LegacyConvertedEnhancedMRImage
    enhanced = convert(datasets, series_instance_uid=highdicom.UID(), series_number=9, sop_instance_uid=highdicom.UID(), instance_number=1)
    path = tmp_path / "enhanced.dcm"
    enhanced.save_as(path)
    for source in (path, tmp_path):  # the file itself, or a folder holding it with its source series
        volume = read_volume(source, series_uid=enhanced.SeriesInstanceUID, log=lambda _: None)
        assert volume.modality == modality and volume.dicom.files == (path,)
        np.testing.assert_allclose(volume.geometry.ijk_to_lps(), atlas.geometry.ijk_to_lps(), atol=1e-4)
        np.testing.assert_array_equal(volume.array, atlas.array)  # rescaled like the series (intercept -1024)


def test_a_truncated_slice_file_is_refused(tmp_path):
    writer = write_scene(tmp_path, axial_positions(np.arange(6) * 2.0), [AXIAL] * 6)
    damaged = writer.paths[3]
    damaged.write_bytes(damaged.read_bytes()[:-300])
    with pytest.raises(InputImageError, match=f"{damaged.name} is truncated: its header declares 1440 bytes of pixel data, the file holds 1140"):
        read_volume(tmp_path)


def test_a_compressed_series_reads_like_the_plain_one_and_a_cut_file_is_refused(tmp_path):
    import pydicom
    from pydicom.uid import RLELossless

    writer = write_scene(tmp_path, axial_positions(np.arange(6) * 2.0), [AXIAL] * 6)
    plain = read_volume(tmp_path, log=lambda _: None).array
    for path in writer.paths:
        dataset = pydicom.dcmread(path)
        dataset.compress(RLELossless)
        dataset.save_as(path)
    np.testing.assert_array_equal(read_volume(tmp_path, log=lambda _: None).array, plain)
    damaged = writer.paths[3]
    damaged.write_bytes(damaged.read_bytes()[:-100])
    with pytest.raises(InputImageError, match=f"{damaged.name} is truncated or damaged"):
        read_volume(tmp_path)


def test_a_slice_file_cut_inside_its_header_is_refused_not_skipped(tmp_path):
    writer = write_scene(tmp_path, axial_positions(np.arange(6) * 2.0), [AXIAL] * 6)
    damaged = writer.paths[2]
    damaged.write_bytes(damaged.read_bytes()[:300])
    with pytest.raises(InputImageError, match=f"{damaged.name} is truncated or damaged: it ends before its pixel data"):
        read_volume(tmp_path)


def test_other_series_are_not_mixed_in_and_the_choice_is_printed(tmp_path):
    write_scene(tmp_path / "a", axial_positions(np.arange(8) * 2.0), [AXIAL] * 8, description="first")
    second = write_scene(tmp_path / "b", axial_positions(np.arange(5) * 3.0), [AXIAL] * 5, description="second")
    notes = []
    assert read_volume(tmp_path, log=notes.append).geometry.size[2] == 8
    assert "(8 slices, first); 1 other series ignored" in notes[0]
    assert read_volume(tmp_path, series_uid=second.series_uid, log=notes.append).geometry.spacing[2] == pytest.approx(3.0)
