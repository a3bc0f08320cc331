"""Segmentations out: Slicer reads our .seg.nrrd with name, colour, terminology and voxels;
writes are atomic and never touch the input or an existing file unless asked."""

from __future__ import annotations

import os

import numpy as np
import pytest
import SimpleITK as sitk

from MedSAMAgentLib.anatomy import segment_style
from MedSAMAgentLib.errors import OutputError
from MedSAMAgentLib.io.volumes import read_volume
from MedSAMAgentLib.io.writers import check_output_path, write_segmentation, write_segments
from Testing.fixtures.volumes import DIRECTIONS, synthetic_image


@pytest.fixture
def oblique_volume(tmp_path):
    path = tmp_path / "input.nrrd"
    sitk.WriteImage(synthetic_image(DIRECTIONS["oblique"]), str(path))
    return read_volume(path)


def test_seg_nrrd_loads_in_slicer_with_name_colour_terminology_and_voxels(tmp_path, oblique_volume):
    import slicer
    import vtk
    from vtk.util import numpy_support

    mask = np.zeros(oblique_volume.geometry.array_shape, bool)
    mask[5:15, 4:30, 8:33] = True
    mask[0, 0, 0] = True  # a corner voxel must survive too
    style = segment_style("right kidney in abdomen CT")
    path = write_segmentation(mask, oblique_volume, tmp_path / "kidney.seg.nrrd", style)

    scene = slicer.vtkMRMLScene()
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    node = logic.LoadSegmentationFromFile(str(path), False, "kidney")
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    segment = segmentation.GetNthSegment(0)
    assert segment.GetName() == "right kidney"
    np.testing.assert_allclose(segment.GetColor(), style.colour, atol=1e-4)
    assert "^64033007^Kidney~SCT^24028007^Right" in segment.GetTerminology()
    assert slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentStatus(segment) == slicer.vtkSlicerSegmentationsModuleLogic.InProgress

    volume_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    volume_node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(oblique_volume.geometry.ijk_to_ras()))
    slicer.util.updateVolumeFromArray(volume_node, oblique_volume.array)
    labelmap = slicer.vtkOrientedImageData()
    node.GetBinaryLabelmapRepresentation(segmentation.GetNthSegmentID(0), labelmap)
    reference = slicer.vtkSlicerSegmentationsModuleLogic.CreateOrientedImageDataFromVolumeNode(volume_node)
    resampled = slicer.vtkOrientedImageData()
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(labelmap, reference, resampled, False, True)
    voxels = numpy_support.vtk_to_numpy(resampled.GetPointData().GetScalars()).reshape(resampled.GetDimensions()[::-1])
    np.testing.assert_array_equal(voxels > 0, mask)
    matrix = vtk.vtkMatrix4x4()
    resampled.GetImageToWorldMatrix(matrix)
    np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(matrix), oblique_volume.geometry.ijk_to_ras(), atol=1e-6)


def test_existing_output_is_kept_without_overwrite(tmp_path):
    existing = tmp_path / "out.nii.gz"
    existing.write_bytes(b"precious")
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        check_output_path(existing, overwrite=False, protected=[])
    assert existing.read_bytes() == b"precious"
    assert check_output_path(existing, overwrite=True, protected=[]) == existing


def test_input_is_never_overwritten(tmp_path):
    source = tmp_path / "ct.nii.gz"
    source.write_bytes(b"input")
    with pytest.raises(OutputError, match="is \\(or is inside\\) the input"):
        check_output_path(source, overwrite=True, protected=[source])
    dicom = tmp_path / "dicom"
    dicom.mkdir()
    with pytest.raises(OutputError, match="is \\(or is inside\\) the input"):
        check_output_path(dicom / "seg.nrrd", overwrite=True, protected=[dicom])


def test_missing_output_folder(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        check_output_path(tmp_path / "no" / "such" / "out.nrrd", overwrite=False, protected=[])


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, oblique_volume, monkeypatch):
    target = tmp_path / "out.nrrd"
    target.write_bytes(b"previous result")

    def broken_write(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", broken_write)
    with pytest.raises(OutputError, match="cannot write .*out.nrrd: disk full"):
        write_segmentation(np.zeros(oblique_volume.geometry.array_shape, bool), oblique_volume, target, segment_style("x"))
    assert target.read_bytes() == b"previous result"
    assert set(os.listdir(tmp_path)) == {"out.nrrd", "input.nrrd"}


def test_segment_style_reads_the_description():
    assert segment_style("right kidney in abdomen CT").name == "right kidney"
    assert segment_style("liver").terminology.endswith("~SCT^10200004^Liver~^^~Anatomic codes - DICOM master list~^^~^^")
    left_lung = segment_style("Left lungs on the chest CT")
    assert left_lung.name == "Left lungs" and "SCT^7771000^Left" in left_lung.terminology
    unknown = segment_style("the weird thing", name="Blob")
    assert unknown.name == "Blob" and unknown.terminology is None and all(0 <= c <= 1 for c in unknown.colour)
    assert (unknown.type.value, unknown.category.value, unknown.known) == ("91723000", "91723000", False)  # generic


def test_segment_codes_come_from_the_dicom_dictionaries():
    from pydicom.sr.codedict import codes

    lesion = segment_style("liver lesion in abdomen CT")  # a lesion of the liver, not the liver
    assert lesion.type == codes.cid7151.Lesion and lesion.category == codes.cid7150.MorphologicallyAbnormalStructure
    assert segment_style("liver tumour").type == codes.cid7151.Neoplasm
    assert segment_style("urinary bladder").type.value == "89837001"
    heart = segment_style("right ventricle")  # the side is part of the concept, not a modifier
    assert heart.type.meaning == "Right ventricle" and heart.modifier is None
    ventricles = segment_style("left lateral ventricles")
    assert ventricles.type == codes.cid7151.LateralVentricle and ventricles.modifier == codes.cid244.Left
    assert segment_style("spleen").colour == segment_style("the spleen", name="Milz").colour != segment_style("liver").colour


def masks_for(volume):
    first = np.zeros(volume.geometry.array_shape, bool)
    first[5:15, 4:30, 8:33] = True
    second = np.zeros_like(first)
    second[10:20, 10:20, 10:20] = True  # overlaps the first
    third = np.zeros_like(first)
    third[0:3, 0:3, 0:3] = True
    return [(first, segment_style("liver")), (second, segment_style("right kidney")), (third, segment_style("odd thing"))]


def test_several_segments_in_one_seg_nrrd_load_in_slicer_overlaps_included(tmp_path, oblique_volume):
    import slicer
    from vtk.util import numpy_support

    segments = masks_for(oblique_volume)
    path = write_segments(segments, oblique_volume, tmp_path / "organs.seg.nrrd")[0]
    scene = slicer.vtkMRMLScene()
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    node = logic.LoadSegmentationFromFile(str(path), False, "organs")
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 3 and segmentation.GetNumberOfLayers() == 2
    volume_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    volume_node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(oblique_volume.geometry.ijk_to_ras()))
    slicer.util.updateVolumeFromArray(volume_node, oblique_volume.array)
    reference = slicer.vtkSlicerSegmentationsModuleLogic.CreateOrientedImageDataFromVolumeNode(volume_node)
    for number, (mask, style) in enumerate(segments):
        segment = segmentation.GetNthSegment(number)
        assert segment.GetName() == style.name
        if style.terminology:
            assert segment.GetTerminology() == style.terminology
        labelmap = slicer.vtkOrientedImageData()
        node.GetBinaryLabelmapRepresentation(segmentation.GetNthSegmentID(number), labelmap)
        resampled = slicer.vtkOrientedImageData()
        slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(labelmap, reference, resampled, False, True)
        voxels = numpy_support.vtk_to_numpy(resampled.GetPointData().GetScalars()).reshape(resampled.GetDimensions()[::-1])
        np.testing.assert_array_equal(voxels > 0, mask)


@pytest.mark.parametrize("name", ["organs.nii.gz", "organs.nrrd", "organs.mha"])
def test_several_segments_in_a_label_map_with_its_sidecar(tmp_path, oblique_volume, name):
    segments = masks_for(oblique_volume)
    written = write_segments(segments, oblique_volume, tmp_path / name)
    assert [p.name for p in written] == [name, "organs.labels.tsv"]
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(written[0])))
    first, second, third = (mask for mask, _ in segments)
    np.testing.assert_array_equal(labels == 1, first)  # the first target keeps the voxels both claim
    np.testing.assert_array_equal(labels == 2, second & ~first)
    np.testing.assert_array_equal(labels == 3, third & ~first & ~second)
    rows = [line.split("\t") for line in written[1].read_text().splitlines()]
    assert rows[0] == ["label", "name", "code", "category", "colour"]
    assert rows[1][:4] == ["1", "liver", "SCT^10200004^Liver", "SCT^91723000^Anatomical Structure"]
    assert rows[2][:3] == ["2", "right kidney", "SCT^64033007^Kidney~SCT^24028007^Right"]
    assert rows[3][:3] == ["3", "odd thing", "SCT^91723000^Anatomical Structure"]
    assert [int(v) for v in rows[1][4].split()] == [round(255 * c) for c in segment_style("liver").colour]
