"""Checks of the module's logic on a real MRML scene, shared by the pytest suite (headless,
slicer-core) and the module's own test inside Slicer (`MedSAMAgentTest`).

Each check builds what it needs in the given scene from a volume node and a reference mask
of the structure to segment, runs the real logic with LiteMedSAM, and raises AssertionError
with a message when an outcome is wrong.
"""

from __future__ import annotations

import numpy as np
import slicer

from MedSAMAgentLib.errors import Cancelled
from MedSAMAgentLib.orientation import SlicePlane
from MedSAMAgentLib.prompts import Box

from .segment_writer import oriented_labelmap, segment_array
from .segmentation_logic import SegmentationJob, SegmentationLogic
from .volume_nodes import geometry_of

RANGE_HALF_WIDTH = 3


def prompt_job(volume_node, reference: np.ndarray, view: str = "axial", margin: float = 3) -> SegmentationJob:
    """A markup-style job: the reference's box on its largest slice, as two RAS corners,
    propagated over a few slices each way (kept short so the check runs in seconds)."""
    geometry = geometry_of(volume_node)
    plane = SlicePlane.for_view(geometry, view)
    stack = plane.to_display(reference)
    key = int(np.argmax(stack.sum(axis=(1, 2))))
    box = Box.around(stack[key], margin)
    corners = tuple(
        tuple((geometry.ijk_to_ras() @ [*plane.voxel_index(key, row, col), 1.0])[:3])
        for row, col in ((box.y0, box.x0), (box.y1, box.x1))
    )
    first = max(0, key - RANGE_HALF_WIDTH)
    last = min(plane.num_slices - 1, key + RANGE_HALF_WIDTH)
    return SegmentationJob(view=view, key_slice=key, box_ras=corners, slice_range=(first, last), segment_name="target", device="cpu")


def new_segmentation(scene, volume_node, name="segmentation"):
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    return node


def add_segment(segmentation_node, volume_node, name: str, mask: np.ndarray) -> str:
    segment_id = segmentation_node.GetSegmentation().AddEmptySegment("", name, [0.2, 0.4, 0.9])
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    logic.SetBinaryLabelmapToSegment(oriented_labelmap(mask, volume_node, segmentation_node), segmentation_node, segment_id, logic.MODE_REPLACE)
    return segment_id


def snapshot(segmentation_node, volume_node) -> dict:
    segmentation = segmentation_node.GetSegmentation()
    return {
        segmentation.GetNthSegmentID(i): segment_array(segmentation_node, segmentation.GetNthSegmentID(i), volume_node)
        for i in range(segmentation.GetNumberOfSegments())
    }


def assert_unchanged(before: dict, after: dict, what: str) -> None:
    assert before.keys() == after.keys(), f"{what}: segments changed from {sorted(before)} to {sorted(after)}"
    for segment_id in before:
        assert np.array_equal(before[segment_id], after[segment_id]), f"{what}: segment {segment_id} changed"


def check_undo_and_neighbour(scene, volume_node, reference: np.ndarray, logic: SegmentationLogic) -> np.ndarray:
    """A box run fills the target segment; an overlapping neighbour survives (overwrite:
    none); one undo restores the segment as it was. Returns the run's mask."""
    segmentation = new_segmentation(scene, volume_node)
    earlier = np.zeros(reference.shape, bool)
    earlier[tuple(slice(s // 3, s // 3 + 2) for s in reference.shape)] = True
    target_id = add_segment(segmentation, volume_node, "target", earlier)
    neighbour = np.roll(reference, 4, axis=2)  # overlaps most of the target
    neighbour_id = add_segment(segmentation, volume_node, "neighbour", neighbour)
    report = logic.process(volume_node, segmentation, target_id, prompt_job(volume_node, reference))
    result = segment_array(segmentation, target_id, volume_node)
    assert result.any() and report.segment_id == target_id, "the run wrote nothing"
    assert np.array_equal(segment_array(segmentation, neighbour_id, volume_node), neighbour), "the neighbouring segment was changed"
    logic.undo()
    assert np.array_equal(segment_array(segmentation, target_id, volume_node), earlier), "undo did not restore the segment"
    return result


def check_overwrite_and_masking(scene, volume_node, reference: np.ndarray, logic: SegmentationLogic) -> None:
    """With 'overwrite all', the run erases what it covers in other segments; with editing
    allowed only inside another segment, nothing is written outside it."""
    editor = logic.writer.editor_node
    segmentation = new_segmentation(scene, volume_node)
    neighbour_id = add_segment(segmentation, volume_node, "neighbour", reference.copy())
    job = prompt_job(volume_node, reference)
    try:
        editor.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteAllSegments)
        report = logic.process(volume_node, segmentation, None, job)
        written = segment_array(segmentation, report.segment_id, volume_node)
        left = segment_array(segmentation, neighbour_id, volume_node)
        assert written.any() and np.array_equal(left, reference & ~written), "overwrite-all did not carve the neighbour"
        editor.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteNone)
        allowed = np.zeros(reference.shape, bool)
        columns = np.flatnonzero(reference.any(axis=(0, 1)))
        allowed[:, :, : int(columns.mean())] = True  # the left half of the target is editable
        area_id = add_segment(segmentation, volume_node, "editable area", allowed)
        editor.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedInsideSingleSegment)
        editor.SetMaskSegmentID(area_id)
        masked = logic.process(volume_node, segmentation, None, job)
        inside = segment_array(segmentation, masked.segment_id, volume_node)
        assert inside.any(), "nothing was written inside the editable area"
        assert not (inside & ~allowed).any(), "the run wrote outside the editable area"
    finally:
        editor.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteNone)
        editor.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedEverywhere)


def check_cancel_changes_nothing(scene, volume_node, reference: np.ndarray, logic: SegmentationLogic) -> None:
    segmentation = new_segmentation(scene, volume_node)
    add_segment(segmentation, volume_node, "kept", reference.copy())
    before = snapshot(segmentation, volume_node)
    calls = []
    try:
        logic.process(volume_node, segmentation, None, prompt_job(volume_node, reference), cancel=lambda: calls.append(1) or len(calls) > 2)
    except Cancelled:
        pass
    else:
        raise AssertionError("the run was not cancelled")
    assert_unchanged(before, snapshot(segmentation, volume_node), "after a cancel")


def check_edits_survive_a_rerun(scene, volume_node, reference: np.ndarray, logic: SegmentationLogic) -> None:
    """Edit two slices of a result (erase one, draw on another), re-run: both edits stay
    voxel for voxel and the other slices are propagated again."""
    segmentation = new_segmentation(scene, volume_node)
    job = prompt_job(volume_node, reference)
    report = logic.process(volume_node, segmentation, None, job)
    plane = SlicePlane.for_view(geometry_of(volume_node), job.view)
    result = plane.to_display(segment_array(segmentation, report.segment_id, volume_node))
    present = np.flatnonzero(result.any(axis=(1, 2)))
    erased, drawn = int(present[0]), int(present[-1])
    edited = result.copy()
    edited[erased] = False
    blob = np.zeros(result.shape[1:], bool)
    blob[: result.shape[1] // 4, : result.shape[2] // 4] = True
    edited[drawn] |= blob
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        oriented_labelmap(plane.from_display(edited), volume_node, segmentation), segmentation, report.segment_id,
        slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE,
    )
    again = logic.rerun(volume_node, segmentation, report.segment_id)
    assert set(again.locked_slices) == {erased, drawn}, f"edited slices {again.locked_slices}, expected {[erased, drawn]}"
    after = plane.to_display(segment_array(segmentation, report.segment_id, volume_node))
    assert np.array_equal(after[erased], edited[erased]), "the erased slice came back"
    assert np.array_equal(after[drawn], edited[drawn]), "the drawn slice was changed"
    assert after[report.key_slice].any(), "the key slice was lost"


def check_seg_nrrd_round_trip(scene, volume_node, reference: np.ndarray, folder) -> None:
    segmentation = new_segmentation(scene, volume_node)
    segment_id = add_segment(segmentation, volume_node, "target", reference)
    path = str(folder / "result.seg.nrrd")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    segmentation.SetAndObserveStorageNodeID(storage.GetID())
    storage.SetFileName(path)
    assert storage.WriteData(segmentation), f"could not write {path}"
    reloaded = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "reloaded")
    reader = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    reloaded.SetAndObserveStorageNodeID(reader.GetID())
    reader.SetFileName(path)
    assert reader.ReadData(reloaded), f"could not read {path}"
    assert np.array_equal(segment_array(reloaded, segment_id, volume_node), reference), "the reloaded segment differs"
