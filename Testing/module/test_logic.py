"""The module's logic, headless, on a real MRML scene."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from MedSAMAgentLib import cli, segmenters
from MedSAMAgentLib.errors import InputImageError, MedSAMAgentError
from MedSAMAgentLib.io.volumes import read_volume
from MedSAMAgentLib.orientation import SlicePlane
from MedSAMAgentLogic import selftest
from MedSAMAgentLogic.segment_writer import oriented_labelmap, segment_array
from MedSAMAgentLogic.segmentation_logic import SegmentationJob
from MedSAMAgentLogic.volume_nodes import add_volume_node, volume_from_node
from Testing.fixtures.anatomy import ct_head
from Testing.fixtures.volumes import rotation


def stored(image: sitk.Image, how: str) -> sitk.Image:
    if how == "flipped":
        return sitk.Flip(image, [True, False, True])  # same anatomy, reversed storage
    if how == "oblique":
        turned = sitk.Image(image)
        turned.SetDirection(tuple((rotation("x", 14.0) @ rotation("z", -9.0)).ravel()))
        return turned
    return image


@pytest.mark.parametrize("how", ["original", "flipped", "oblique"])
def test_a_box_run_writes_exactly_the_engine_result(tmp_path, scene, logic, litemedsam, monkeypatch, how):
    """The same CT head, stored three ways: the segment written through the volume node's
    IJK-to-RAS equals, voxel for voxel, what the command line computes from the file."""
    path, brain = ct_head()
    image = stored(sitk.ReadImage(str(path)), how)
    reference = stored(sitk.GetImageFromArray(brain.astype(np.uint8)), how)
    source = tmp_path / "head.nrrd"
    sitk.WriteImage(image, str(source))
    volume = read_volume(source)
    node = add_volume_node(scene, volume.array, volume.geometry.ijk_to_ras(), "head")
    np.testing.assert_allclose(volume_from_node(node).geometry.ijk_to_lps(), volume.geometry.ijk_to_lps(), atol=1e-9)
    truth = sitk.GetArrayFromImage(reference) > 0
    job = selftest.prompt_job(node, truth)
    job.window = "brain"
    segmentation = selftest.new_segmentation(scene, node)
    report = logic.process(node, segmentation, None, job)
    written = segment_array(segmentation, report.segment_id, node)

    monkeypatch.setattr(segmenters, "create_segmenter", lambda *a, **k: litemedsam)
    output = tmp_path / "engine.nrrd"
    corners = [*job.box_ras[0], *job.box_ras[1]]
    assert cli.main(["segment", str(source), "-o", str(output), "--box-ras", *map(str, corners), "--window", "brain",
                     "--range", *map(str, job.slice_range)]) == 0
    engine = sitk.GetArrayFromImage(sitk.ReadImage(str(output))) > 0
    assert written.sum() > 1000
    np.testing.assert_array_equal(written, engine)


@pytest.mark.parametrize("check", selftest.LOGIC_CHECKS, ids=lambda check: check.__name__)
def test_logic_check(scene, logic, phantom_node, check):
    """Undo and a neighbour that survives; overwrite and masking settings; a cancel that
    changes nothing; edits that survive a re-run (see MedSAMAgentLogic.selftest)."""
    node, kidney = phantom_node
    check(scene, node, kidney, logic)


def test_seg_nrrd_round_trip(tmp_path, scene, phantom_node):
    node, kidney = phantom_node
    selftest.check_seg_nrrd_round_trip(scene, node, kidney, tmp_path)


def test_new_segment_is_named_coloured_coded_and_in_progress(scene, logic, phantom_node):
    import slicer

    node, kidney = phantom_node
    segmentation = selftest.new_segmentation(scene, node)
    job = selftest.prompt_job(node, kidney)
    job.segment_name = None
    job.target = ""
    job.segment_name = "right kidney"
    report = logic.process(node, segmentation, None, job)
    segment = segmentation.GetSegmentation().GetSegment(report.segment_id)
    assert segment.GetName() == "right kidney"
    assert "SCT^64033007^Kidney~SCT^24028007^Right" in segment.GetTerminology()
    status = slicer.vtkSlicerSegmentationsModuleLogic
    assert status.GetSegmentStatus(segment) == status.InProgress
    assert "voxels" in report.summary and "mL" in report.summary


def test_propagate_from_a_drawn_slice(scene, logic, phantom_node):
    """The radiologist draws on one slice and presses Propagate: the drawing is kept and
    followed through the neighbouring slices."""

    node, kidney = phantom_node
    plane = SlicePlane.for_view(volume_from_node(node).geometry, "axial")
    truth = plane.to_display(kidney)
    key = int(np.argmax(truth.sum(axis=(1, 2))))
    drawing = np.zeros_like(truth)
    drawing[key] = truth[key]
    segmentation = selftest.new_segmentation(scene, node)
    segment_id = selftest.add_segment(segmentation, node, "kidney", plane.from_display(drawing))
    job = SegmentationJob(key_slice=key, slice_range=(key - 3, key + 3))
    report = logic.propagate(node, segmentation, segment_id, job)
    result = plane.to_display(segment_array(segmentation, segment_id, node))
    np.testing.assert_array_equal(result[key], truth[key])
    assert report.locked_slices == [key]
    assert all(result[i].any() for i in range(key - 3, key + 4))


def test_failures_leave_the_scene_untouched(scene, logic, phantom_node):
    node, kidney = phantom_node
    segmentation = selftest.new_segmentation(scene, node)
    selftest.add_segment(segmentation, node, "kept", kidney)
    before = selftest.snapshot(segmentation, node)
    empty = add_volume_node(scene, np.zeros((4, 5, 6), np.int16), np.eye(4), "empty")
    with pytest.raises(InputImageError, match="is empty"):
        logic.process(empty, segmentation, None, SegmentationJob(key_slice=1))
    with pytest.raises(MedSAMAgentError, match="nothing to re-run"):
        logic.rerun(node, segmentation, segmentation.GetSegmentation().GetNthSegmentID(0))
    job = selftest.prompt_job(node, kidney)
    job.key_slice = 400
    with pytest.raises(MedSAMAgentError, match="slice 400 is outside the volume"):
        logic.process(node, segmentation, None, job)
    selftest.assert_unchanged(before, selftest.snapshot(segmentation, node), "after failed runs")


def test_missing_weights_are_refused_before_the_worker_starts(scene, phantom_node, tmp_path, monkeypatch):
    """In the main thread, before any model loads: the scene stays as it was."""
    import huggingface_hub.constants as constants

    from MedSAMAgentLib.errors import CheckpointError
    from MedSAMAgentLogic.segmentation_logic import SegmentationLogic

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    node, kidney = phantom_node
    segmentation = selftest.new_segmentation(scene, node)
    selftest.add_segment(segmentation, node, "kept", kidney)
    before = selftest.snapshot(segmentation, node)
    job = selftest.prompt_job(node, kidney)
    job.segmenter = "medsam2"
    logic = SegmentationLogic(scene)
    with pytest.raises(CheckpointError, match=r"MedSAM2_latest.pt from wanglab/MedSAM2 is not on this machine .*models fetch medsam2"):
        logic.prepare("segment", node, segmentation, None, job)
    assert logic.engine_for(job)._segmenters == {}  # nothing was loaded
    selftest.assert_unchanged(before, selftest.snapshot(segmentation, node), "after the refused run")


def test_the_machine_report_is_the_doctors(scene):
    from MedSAMAgentLogic.segmentation_logic import SegmentationLogic

    report = SegmentationLogic(scene).machine_report()
    assert report.splitlines()[0] == "Software" and "litemedsam" in report and "runtime" in report
    assert "Server" not in report


def test_the_agent_path_with_an_endpoint(scene, logic, phantom_node):
    from MedSAMAgentLib.agent.protocol import tool_call_text
    from MedSAMAgentLib.agent.view import Letterbox
    from MedSAMAgentLib.metrics import dice
    from MedSAMAgentLib.prompts import Box
    from Testing.fixtures.chat_server import ScriptedChatServer

    node, kidney = phantom_node
    volume = volume_from_node(node)
    plane = SlicePlane.for_view(volume.geometry, "axial")
    truth = plane.to_display(kidney)
    key = int(np.argmax(truth.sum(axis=(1, 2))))
    letterbox = Letterbox.fit(plane.image_shape, plane.pixel_spacing)
    box = Box.around(truth[key], 3)
    grid = [*letterbox.to_grid(box.x0, box.y0), *letterbox.to_grid(box.x1, box.y1)]
    script = [{"content": tool_call_text("add_bbox", {"bbox_2d": grid})}, {"content": tool_call_text("stop_action", {})}]
    segmentation = selftest.new_segmentation(scene, node)
    with ScriptedChatServer(script) as server:
        job = SegmentationJob(target="right kidney in abdomen CT", key_slice=key, policy="endpoint", endpoint_url=server.url,
                              api_key="secret", slice_range=(key - 3, key + 3))
        report = logic.process(node, segmentation, None, job)
    assert server.headers[0]["Authorization"] == "Bearer secret"
    key_run = report.records[0]
    assert (key_run.role, key_run.slice_index, key_run.actions, key_run.end_reason) == ("key", key, 1, "stop_action")
    assert [turn.label for turn in key_run.turns] == ["box", "stop"] and key_run.turns[0].picture_png.startswith(b"\x89PNG")
    segment = segmentation.GetSegmentation().GetSegment(report.segment_id)
    assert segment.GetName() == "right kidney"
    written = plane.to_display(segment_array(segmentation, report.segment_id, node))
    assert dice(written[key], truth[key]) >= 0.9


def test_a_segment_reaching_beyond_the_volume_reads_on_the_volume_grid(scene, phantom_node):
    """A segmentation made on a larger grid (another volume) still reads back, on this
    volume's grid, as exactly the part inside this volume."""
    node, kidney = phantom_node
    large = np.pad(kidney, 6)  # 6 more voxels on every side
    matrix = volume_from_node(node).geometry.ijk_to_ras()
    large_matrix = matrix.copy()
    large_matrix[:3, 3] = (matrix @ [-6, -6, -6, 1])[:3]
    large_node = add_volume_node(scene, large.astype(np.int16), large_matrix, "large")
    large[0], large[:, :, -1] = True, True  # outside the phantom's grid
    segmentation = selftest.new_segmentation(scene, large_node)
    segment_id = selftest.add_segment(segmentation, large_node, "kidney", large)
    read = segment_array(segmentation, segment_id, node)
    assert read.shape == kidney.shape
    np.testing.assert_array_equal(read, kidney)


def test_a_closed_scene_takes_nothing_of_the_old_one_along(scene, logic, phantom):
    """After File > Close Scene (the scene cleared, node IDs reused), runs write again and
    no edit remembered from the closed scene is applied to the new one."""
    volume, organs = phantom
    kidney = organs["right kidney"]
    for _ in range(2):
        node = add_volume_node(scene, volume.array, volume.geometry.ijk_to_ras(), "phantom")
        segmentation = selftest.new_segmentation(scene, node)
        report = logic.process(node, segmentation, None, selftest.prompt_job(node, kidney))
        assert segment_array(segmentation, report.segment_id, node).any()
        ids = (segmentation.GetID(), report.segment_id)
        scene.Clear(False)
        logic.forget_scene()
        assert logic.edits.last(*ids) is None


def test_running_on_a_server_writes_the_same_segment_as_running_here(scene, logic, phantom_node, server, keys):
    """The module's remote mode on a real scene: the same job on this computer and on a real
    server writes the same voxels; a re-run after an edit keeps the edit on the server too."""
    node, kidney = phantom_node
    here_node = selftest.new_segmentation(scene, node, "here")
    there_node = selftest.new_segmentation(scene, node, "there")
    job = selftest.prompt_job(node, kidney)
    here = logic.process(node, here_node, None, job)
    remote_job = selftest.prompt_job(node, kidney)
    remote_job.server_url, remote_job.server_key = server.url, keys[1]["alice"]
    there = logic.process(node, there_node, None, remote_job)
    written_here = segment_array(here_node, here.segment_id, node)
    written_there = segment_array(there_node, there.segment_id, node)
    assert written_there.any() and np.array_equal(written_there, written_here)

    plane = SlicePlane.for_view(volume_from_node(node).geometry, "axial")
    edited = plane.to_display(written_there)
    erased = int(np.flatnonzero(edited.any(axis=(1, 2)))[-1])
    edited[erased] = False
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        oriented_labelmap(plane.from_display(edited), node, there_node), there_node, there.segment_id,
        slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE,
    )
    again = logic.rerun(node, there_node, there.segment_id, remote_job)
    assert again.locked_slices == [erased]
    assert not plane.to_display(segment_array(there_node, there.segment_id, node))[erased].any()
    assert keys[1]["alice"] not in server.log()


def test_a_point_on_another_slice_is_a_seed_there(scene, logic, phantom_node):
    """A positive point placed 3 slices from the ROI's slice becomes a prompt on its own
    slice. LiteMedSAM is box-only: from a point alone it finds nothing, and the run says so
    for that slice and changes nothing."""
    from MedSAMAgentLib.prompts import SlicePrompts, box_from_ras, point_from_ras
    from MedSAMAgentLogic.segmentation_logic import SEGMENT

    node, kidney = phantom_node
    volume = volume_from_node(node)
    plane = SlicePlane.for_view(volume.geometry, "axial")
    job = selftest.prompt_job(node, kidney)
    further = job.key_slice + 3
    rows, cols = np.nonzero(plane.to_display(kidney)[further])
    centre = (volume.geometry.ijk_to_ras() @ [*plane.voxel_index(further, np.median(rows), np.median(cols)), 1.0])[:3]
    job.points_ras = [(tuple(centre), True)]
    segmentation = selftest.new_segmentation(scene, node)
    request = logic.prepare(SEGMENT, node, segmentation, None, job).request
    assert request.key_slice == job.key_slice
    assert request.prompts == SlicePrompts(box=box_from_ras(volume.geometry, plane, *job.box_ras).box)
    assert request.prompts_at == {further: SlicePrompts(points=(point_from_ras(volume.geometry, plane, centre, True)[1],))}
    with pytest.raises(MedSAMAgentError, match=f"the segmenter found nothing for the prompt on slice {further}"):
        logic.process(node, segmentation, None, job)
    assert selftest.snapshot(segmentation, node) == {}


def test_rerun_after_growing_keeps_every_seed_slice(scene, logic, phantom_node):
    """After a box on a second slice grew the segment, Re-run propagates again from the last
    run's key slice (the second box's) with the first seed's slice kept as it is."""
    node, kidney = phantom_node
    plane = SlicePlane.for_view(volume_from_node(node).geometry, "axial")
    segmentation = selftest.new_segmentation(scene, node)
    first = selftest.prompt_job(node, kidney)
    report = logic.process(node, segmentation, None, first)
    grow = selftest.prompt_job(node, kidney, key=first.key_slice + 2)
    grow.slice_range = first.slice_range
    logic.process(node, segmentation, report.segment_id, grow)
    grown = plane.to_display(segment_array(segmentation, report.segment_id, node)).copy()
    again = logic.rerun(node, segmentation, report.segment_id)
    assert (again.key_slice, again.locked_slices) == (grow.key_slice, [first.key_slice])
    after = plane.to_display(segment_array(segmentation, report.segment_id, node))
    for seed in (first.key_slice, grow.key_slice):
        np.testing.assert_array_equal(after[seed], grown[seed])
