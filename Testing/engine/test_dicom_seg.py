"""DICOM SEG out, from a real-anatomy DICOM series: read back with highdicom and pydicom,
the masks equal the NIfTI output voxel for voxel, the source series and every instance
are referenced, and each segment carries its label, SNOMED CT codes and the algorithm."""

from __future__ import annotations

import highdicom
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from MedSAMAgentLib import __version__
from MedSAMAgentLib.anatomy import segment_style
from MedSAMAgentLib.errors import OutputError
from MedSAMAgentLib.io.dicom_seg import Provenance
from MedSAMAgentLib.io.volumes import read_volume
from MedSAMAgentLib.io.writers import write_segmentation, write_segments
from Testing.fixtures.dicom_series import anatomy_series


def seg_masks_by_pydicom(path, geometry) -> np.ndarray:
    """(segments, k, j, i) from the SEG's frames, each placed by its own plane position."""
    dataset = pydicom.dcmread(str(path))
    frames = dataset.pixel_array.reshape(-1, dataset.Rows, dataset.Columns)
    masks = np.zeros((len(dataset.SegmentSequence), *geometry.array_shape), bool)
    inverse = np.linalg.inv(geometry.ijk_to_lps())
    for frame, group in zip(frames, dataset.PerFrameFunctionalGroupsSequence):
        position = [float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient]
        i, j, k = (inverse @ [*position, 1.0])[:3]
        assert abs(i) < 1e-3 and abs(j) < 1e-3 and abs(k - round(k)) < 1e-3  # frames lie on the volume's slices
        identification = group if "SegmentIdentificationSequence" in group else dataset.SharedFunctionalGroupsSequence[0]
        number = int(identification.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        masks[number - 1, int(round(k))] = frame > 0
    return masks


def seg_masks_by_highdicom(path, geometry) -> np.ndarray:
    """(segments, k, j, i) from highdicom's own volume, mapped through its affine."""
    volume = highdicom.seg.segread(str(path)).get_volume(combine_segments=False)
    k, j, i = np.meshgrid(*[np.arange(n) for n in geometry.array_shape], indexing="ij")
    ours = np.stack([i, j, k, np.ones_like(i)], axis=-1).reshape(-1, 4).astype(float)
    theirs = (np.linalg.inv(volume.affine) @ geometry.ijk_to_lps() @ ours.T)[:3]
    index = np.rint(theirs).astype(int)
    assert np.abs(theirs - index).max() < 1e-3
    values = volume.array[index[0], index[1], index[2]]  # (voxels, segments)
    return np.moveaxis(values.reshape(*geometry.array_shape, -1), -1, 0) > 0


@pytest.fixture(scope="module")
def head_series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("head")
    writer, _, brain = anatomy_series(folder / "series", step=3)
    return writer, read_volume(folder / "series", log=lambda _: None), brain


def test_seg_of_one_target_reads_back_with_its_codes_references_and_the_nifti_voxels(tmp_path, head_series):
    writer, volume, brain = head_series
    mask = brain.copy()
    mask[:, :, : mask.shape[2] // 2] = False  # the patient's right half: no symmetry hides a flip
    style = segment_style("right cerebral hemisphere in head CT")
    seg_path = write_segmentation(mask, volume, tmp_path / "hemisphere.dcm", style, Provenance("litemedsam", "clinician"))
    nifti_path = write_segmentation(mask, volume, tmp_path / "hemisphere.nii.gz", style)
    nifti = sitk.GetArrayFromImage(sitk.ReadImage(str(nifti_path))) > 0
    np.testing.assert_array_equal(nifti, mask)
    np.testing.assert_array_equal(seg_masks_by_pydicom(seg_path, volume.geometry)[0], nifti)
    np.testing.assert_array_equal(seg_masks_by_highdicom(seg_path, volume.geometry)[0], nifti)

    seg = highdicom.seg.segread(str(seg_path))
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and seg.Modality == "SEG"
    source = pydicom.dcmread(str(writer.paths[0]), stop_before_pixels=True)
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert seg.PatientID == "TEST-001"
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == writer.series_uid
    expected_instances = {pydicom.dcmread(str(p), stop_before_pixels=True).SOPInstanceUID for p in writer.paths}
    assert {item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence} == expected_instances
    description = seg.SegmentSequence[0]
    assert description.SegmentLabel == "right cerebral hemisphere"
    assert (description.SegmentedPropertyCategoryCodeSequence[0].CodeValue, description.SegmentedPropertyTypeCodeSequence[0].CodeValue) == (
        "91723000", "372073000")
    modifier = description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0]
    assert (modifier.CodeValue, modifier.CodingSchemeDesignator, modifier.CodeMeaning) == ("24028007", "SCT", "Right")
    algorithm = description.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "MedSAM-Agent" and algorithm.AlgorithmVersion == __version__
    assert algorithm.AlgorithmParameters == "segmenter=litemedsam,prompts=agent,edited=no" and algorithm.AlgorithmSource == "clinician"
    assert description.SegmentAlgorithmType == "AUTOMATIC"


def test_seg_of_several_targets_holds_one_segment_each_overlaps_kept(tmp_path, head_series):
    _, volume, brain = head_series
    right = brain.copy()
    right[:, :, : brain.shape[2] // 2] = False
    unknown = np.zeros_like(brain)
    unknown[10:15, 20:30, 20:30] = True
    segments = [(brain, segment_style("brain")), (right, segment_style("right cerebral hemisphere")),
                (unknown, segment_style("the odd blob"))]
    path = write_segments(segments, volume, tmp_path / "several.dcm", Provenance("medsam2", None, edited=True))[0]
    long_agent = Provenance("medsam2", "qwen /models/Saint-lsy/MedSAM-Agent-Qwen3-VL-8B-MedSAM2/checkpoint-final-with-a-long-name")
    source = highdicom.seg.segread(str(write_segments(segments, volume, tmp_path / "long.dcm", long_agent)[0]))
    text = source.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmSource
    assert len(text) == 64 and text.startswith("qwen /models/Saint-lsy") and text.endswith("...")
    for masks in (seg_masks_by_pydicom(path, volume.geometry), seg_masks_by_highdicom(path, volume.geometry)):
        assert masks.shape[0] == 3
        for read, (mask, _) in zip(masks, segments):
            np.testing.assert_array_equal(read, mask)
    seg = highdicom.seg.segread(str(path))
    labels = [item.SegmentLabel for item in seg.SegmentSequence]
    types = [item.SegmentedPropertyTypeCodeSequence[0].CodeValue for item in seg.SegmentSequence]
    assert labels == ["brain", "right cerebral hemisphere", "the odd blob"]
    assert types == ["12738006", "372073000", "91723000"]  # an unknown target: generic code, typed name
    assert {item.SegmentAlgorithmType for item in seg.SegmentSequence} == {"SEMIAUTOMATIC"}


def test_seg_of_a_resampled_series_lies_on_the_regular_grid(tmp_path):
    _, _, brain = anatomy_series(tmp_path / "series", step=3, keep=[k for k in range(60) if k != 30])
    volume = read_volume(tmp_path / "series", log=lambda _: None)
    assert volume.dicom.resampled and volume.geometry.size[2] == 60
    path = write_segmentation(brain, volume, tmp_path / "brain.dcm", segment_style("brain"))
    np.testing.assert_array_equal(seg_masks_by_pydicom(path, volume.geometry)[0], brain)
    referenced = highdicom.seg.segread(str(path)).ReferencedSeriesSequence[0].ReferencedInstanceSequence
    assert len(referenced) == 59


def test_seg_for_an_input_that_is_not_dicom_is_refused_and_nothing_is_written(tmp_path, head_series):
    _, volume, brain = head_series
    path = tmp_path / "head.nrrd"
    sitk.WriteImage(volume.geometry.apply_to(sitk.GetImageFromArray(volume.array)), str(path))
    nrrd_volume = read_volume(path)
    with pytest.raises(OutputError, match="a DICOM SEG \\(.dcm\\) references the DICOM series it segments, and the input head.nrrd is not DICOM"):
        write_segmentation(brain, nrrd_volume, tmp_path / "brain.dcm", segment_style("brain"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.nrrd"]
