"""Checks of the module's logic on a real MRML scene, shared by the pytest suite (headless,
slicer-core) and the module's own test inside Slicer (`MedSAMAgentTest`).

Each check builds what it needs in the given scene from a volume node and a reference mask
of the structure to segment, runs the real logic with LiteMedSAM, and raises AssertionError
with a message when an outcome is wrong.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import slicer

from MedSAMAgentLib.errors import Cancelled, MedSAMAgentError
from MedSAMAgentLib.io.volumes import Geometry
from MedSAMAgentLib.metrics import dice
from MedSAMAgentLib.orientation import SlicePlane
from MedSAMAgentLib.prompts import Box

from .segment_writer import SEGMENT_EDITOR_SINGLETON, copy_masking_settings, oriented_labelmap, segment_array
from .segmentation_logic import SegmentationJob, SegmentationLogic
from .volume_nodes import geometry_of

RANGE_HALF_WIDTH = 3


def prompt_job(volume_node, reference: np.ndarray, view: str = "axial", margin: float = 3, key: int | None = None) -> SegmentationJob:
    """A markup-style job: the reference's box on its largest slice (or on slice `key`), as
    two RAS corners, propagated over a few slices each way (kept short so the check runs in
    seconds)."""
    geometry = geometry_of(volume_node)
    plane = SlicePlane.for_view(geometry, view)
    stack = plane.to_display(reference)
    key = int(np.argmax(stack.sum(axis=(1, 2)))) if key is None else key
    box = Box.around(stack[key], margin)
    corners = tuple(
        tuple((geometry.ijk_to_ras() @ [*plane.voxel_index(key, row, col), 1.0])[:3])
        for row, col in ((box.y0, box.x0), (box.y1, box.x1))
    )
    first = max(0, key - RANGE_HALF_WIDTH)
    last = min(plane.num_slices - 1, key + RANGE_HALF_WIDTH)
    return SegmentationJob(view=view, key_slice=key, box_ras=corners, slice_range=(first, last), segment_name="target", device="cpu")


# Slicer's slice orientations: the view normal (SliceToRAS column 2) in RAS.
ANATOMICAL_NORMALS = {"axial": (0.0, 0.0, 1.0), "coronal": (0.0, 1.0, 0.0), "sagittal": (1.0, 0.0, 0.0)}


def set_slice_view(scene, layout_name: str, normal, centre):
    """The slice view `layout_name`, set to the given normal and through `centre` (RAS)."""
    normal = np.asarray(normal, float) / np.linalg.norm(normal)
    helper = np.array([0.0, 0.0, 1.0]) if abs(normal[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x_axis = np.cross(helper, normal)
    x_axis /= np.linalg.norm(x_axis)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = x_axis, np.cross(normal, x_axis), normal, centre
    node = scene.GetSingletonNode(layout_name, "vtkMRMLSliceNode")
    if node is None:
        node = slicer.vtkMRMLSliceNode()
        node.SetLayoutName(layout_name)  # also its singleton tag, as in Slicer's layouts
        node = scene.AddNode(node)
    slicer.util.updateVTKMatrixFromArray(node.GetSliceToRAS(), matrix)
    node.UpdateMatrices()
    return node


def voxel_centre_ras(geometry: Geometry, plane: SlicePlane, slice_index: int) -> np.ndarray:
    middle = [(n - 1) / 2 for n in plane.image_shape]
    return (geometry.ijk_to_ras() @ [*plane.voxel_index(slice_index, *middle), 1.0])[:3]


def roi_around(scene, corners, thickness_mm=3.0):
    low, high = np.minimum(*corners), np.maximum(*corners)
    size = np.maximum(high - low, thickness_mm)
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
    roi.SetCenter(*((low + high) / 2))
    roi.SetSize(*size)
    return roi


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


@contextmanager
def segment_editor_settings(scene, overwrite: int, mask_mode: int | None = None, mask_segment: str = "",
                            intensity_range: tuple[float, float] | None = None):
    """The Segment Editor module's masking and overwrite settings, as a user would set them
    (its singleton parameter node, created as the module does when it is missing), put back
    as they were afterwards."""
    node = scene.GetSingletonNode(SEGMENT_EDITOR_SINGLETON, "vtkMRMLSegmentEditorNode")
    created = node is None
    if created:
        node = slicer.vtkMRMLSegmentEditorNode()
        node.SetSingletonTag(SEGMENT_EDITOR_SINGLETON)
        node = scene.AddNode(node)
    saved = slicer.vtkMRMLSegmentEditorNode()
    copy_masking_settings(node, saved)
    node.SetOverwriteMode(overwrite)
    node.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedEverywhere if mask_mode is None else mask_mode)
    node.SetMaskSegmentID(mask_segment)
    node.SetSourceVolumeIntensityMask(intensity_range is not None)
    if intensity_range is not None:
        node.SetSourceVolumeIntensityMaskRange(*intensity_range)
    try:
        yield node
    finally:
        if created:
            scene.RemoveNode(node)
        else:
            copy_masking_settings(saved, node)


def check_undo_and_neighbour(scene, volume_node, reference: np.ndarray, logic: SegmentationLogic) -> np.ndarray:
    """A box run fills the target segment; an overlapping neighbour survives (overwrite:
    none); one undo restores the segment as it was, a second one is refused. Returns the
    run's mask."""
    segmentation = new_segmentation(scene, volume_node)
    earlier = np.zeros(reference.shape, bool)
    earlier[tuple(slice(s // 3, s // 3 + 2) for s in reference.shape)] = True
    target_id = add_segment(segmentation, volume_node, "target", earlier)
    neighbour = np.roll(reference, 4, axis=2)  # overlaps most of the target
    neighbour_id = add_segment(segmentation, volume_node, "neighbour", neighbour)
    with segment_editor_settings(scene, slicer.vtkMRMLSegmentEditorNode.OverwriteNone):
        report = logic.process(volume_node, segmentation, target_id, prompt_job(volume_node, reference))
    result = segment_array(segmentation, target_id, volume_node)
    assert result.any() and report.segment_id == target_id, "the run wrote nothing"
    assert np.array_equal(segment_array(segmentation, neighbour_id, volume_node), neighbour), "the neighbouring segment was changed"
    logic.undo()
    assert np.array_equal(segment_array(segmentation, target_id, volume_node), earlier), "undo did not restore the segment"
    assert logic.edits.last(segmentation.GetID(), target_id) is None, "the undone run is still taken as the last result"
    try:
        logic.undo()
    except MedSAMAgentError as error:
        assert "nothing to undo" in str(error), str(error)
    else:
        raise AssertionError("a second undo was not refused")
    return result


def check_overwrite_and_masking(scene, volume_node, reference: np.ndarray, logic: SegmentationLogic) -> None:
    """The Segment Editor's settings apply even when set after the logic was made: with
    'overwrite all', the run erases what it covers in other segments; with editing allowed
    only inside another segment, nothing is written outside it; when the settings leave
    nothing writable, the run is refused and the segmentation is unchanged."""
    segmentation = new_segmentation(scene, volume_node)
    neighbour_id = add_segment(segmentation, volume_node, "neighbour", reference.copy())
    job = prompt_job(volume_node, reference)
    with segment_editor_settings(scene, slicer.vtkMRMLSegmentEditorNode.OverwriteAllSegments):
        report = logic.process(volume_node, segmentation, None, job)
    written = segment_array(segmentation, report.segment_id, volume_node)
    left = segment_array(segmentation, neighbour_id, volume_node)
    assert written.any() and np.array_equal(left, reference & ~written), "overwrite-all did not carve the neighbour"

    allowed = np.zeros(reference.shape, bool)
    columns = np.flatnonzero(reference.any(axis=(0, 1)))
    allowed[:, :, : int(columns.mean())] = True  # the left half of the target is editable
    area_id = add_segment(segmentation, volume_node, "editable area", allowed)
    inside_area = slicer.vtkMRMLSegmentationNode.EditAllowedInsideSingleSegment
    with segment_editor_settings(scene, slicer.vtkMRMLSegmentEditorNode.OverwriteNone, inside_area, area_id):
        masked = logic.process(volume_node, segmentation, None, job)
    inside = segment_array(segmentation, masked.segment_id, volume_node)
    assert inside.any(), "nothing was written inside the editable area"
    assert not (inside & ~allowed).any(), "the run wrote outside the editable area"

    before = snapshot(segmentation, volume_node)
    array = slicer.util.arrayFromVolume(volume_node)
    above_everything = (float(array.max()) + 1, float(array.max()) + 2)
    for settings, message in (
        ({"intensity_range": above_everything}, "nothing could be written"),
        ({"mask_mode": inside_area, "mask_segment": "no such segment"}, "which this segmentation does not have"),
    ):
        with segment_editor_settings(scene, slicer.vtkMRMLSegmentEditorNode.OverwriteNone, **settings):
            try:
                logic.process(volume_node, segmentation, None, job)
            except MedSAMAgentError as error:
                assert message in str(error), str(error)
            else:
                raise AssertionError(f"a run with nothing writable was not refused ({settings})")
        assert_unchanged(before, snapshot(segmentation, volume_node), f"after a refused run ({settings})")


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
    assert logic.last_run is not None and logic.last_run.outcome["status"] == "cancelled", "the cancelled run left no record"


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


def check_a_box_on_another_slice_grows_the_segment(scene, volume_node, reference: np.ndarray, logic: SegmentationLogic) -> None:
    """Segment, then Segment again with the box 5 slices further: the segment grows from
    there (an update), the slices the new box cannot reach stay voxel for voxel, and one
    undo restores the first result exactly. The update's range starts lower than the first
    run's: a run from scratch would fill those slices, the update keeps them as they were."""
    segmentation = new_segmentation(scene, volume_node)
    first_job = prompt_job(volume_node, reference)
    key = first_job.key_slice
    report = logic.process(volume_node, segmentation, None, first_job)
    plane = SlicePlane.for_view(geometry_of(volume_node), first_job.view)
    first = plane.to_display(segment_array(segmentation, report.segment_id, volume_node)).copy()
    further = key + 5
    assert first[key].any() and not first[key + RANGE_HALF_WIDTH + 1 :].any(), "the first run went beyond its range"
    grow = prompt_job(volume_node, reference, key=further)
    grow.slice_range = (key - 2 * RANGE_HALF_WIDTH, further + RANGE_HALF_WIDTH)
    logic.process(volume_node, segmentation, report.segment_id, grow)
    grown = plane.to_display(segment_array(segmentation, report.segment_id, volume_node))
    assert np.array_equal(grown[: key + 1], first[: key + 1]), "slices the new box cannot reach were changed"
    assert all(grown[index].any() for index in range(key, further + RANGE_HALF_WIDTH + 1)), "the segment did not grow to the new box"
    last = logic.edits.last(segmentation.GetID(), report.segment_id)
    assert last.seeds == (key, further), f"the grown result's seeds are {last.seeds}"
    logic.undo()
    restored = plane.to_display(segment_array(segmentation, report.segment_id, volume_node))
    assert np.array_equal(restored, first), "one undo did not restore the first result"
    assert logic.edits.last(segmentation.GetID(), report.segment_id).seeds == (key,), "undo left the grown result remembered"


def check_manual_prompts_from_settings(scene, volume_node, reference: np.ndarray, logic: SegmentationLogic, parameters) -> None:
    """The widget's manual path: with no agent, an ROI placed in the scene across the slice
    the Red view shows gives, through the module's settings (`parameters`: its parameter
    node), the same segment as the same box typed as RAS corners (the command line's
    --box-ras), and the segment matches the reference."""
    from .parameters import NO_AGENT, job_from_parameters

    typed = prompt_job(volume_node, reference)
    geometry = geometry_of(volume_node)
    plane = SlicePlane.for_view(geometry, typed.view)
    set_slice_view(scene, "Red", ANATOMICAL_NORMALS[typed.view], voxel_centre_ras(geometry, plane, typed.key_slice))
    parameters.inputVolume = volume_node
    parameters.keySliceView = "Red"
    parameters.agentSource = NO_AGENT
    parameters.promptBox = roi_around(scene, typed.box_ras)
    placed = job_from_parameters(parameters, scene, "", "segment")
    assert (placed.view, placed.key_slice, placed.target) == (typed.view, typed.key_slice, ""), "the settings named another slice"
    placed.slice_range, placed.device = typed.slice_range, typed.device

    by_typing = new_segmentation(scene, volume_node, "typed")
    by_placing = new_segmentation(scene, volume_node, "placed")
    typed_mask = segment_array(by_typing, logic.process(volume_node, by_typing, None, typed).segment_id, volume_node)
    placed_mask = segment_array(by_placing, logic.process(volume_node, by_placing, None, placed).segment_id, volume_node)
    assert np.array_equal(placed_mask, typed_mask), "the placed ROI segmented differently from the typed corners"
    first, last = typed.slice_range
    score = dice(plane.to_display(placed_mask)[first:last + 1], plane.to_display(reference)[first:last + 1])
    assert score > 0.9, f"Dice {score:.3f} against the reference"


# The checks that take (scene, volume node, reference, logic), run in this order by both
# the pytest suite and MedSAMAgentTest.
LOGIC_CHECKS = (
    check_undo_and_neighbour,
    check_overwrite_and_masking,
    check_cancel_changes_nothing,
    check_edits_survive_a_rerun,
    check_a_box_on_another_slice_grows_the_segment,
)


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
