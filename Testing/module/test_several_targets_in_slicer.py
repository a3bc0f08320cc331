"""Several targets in the module, on a real slicer-core scene: one segment per line of the
target, written as ONE undo step, overlaps resolved by the Segment Editor's overwrite
setting, and a failing target reported by name while the others are written."""

from __future__ import annotations

import numpy as np
import pytest
import slicer

from MedSAMAgentLib.agent.protocol import tool_call_text
from MedSAMAgentLib.agent.view import Letterbox
from MedSAMAgentLib.errors import PromptError
from MedSAMAgentLib.orientation import SlicePlane
from MedSAMAgentLib.prompts import Box
from MedSAMAgentLogic import selftest
from MedSAMAgentLogic.segment_writer import SEGMENT_EDITOR_SINGLETON, segment_array
from MedSAMAgentLogic.segmentation_logic import SegmentationJob
from MedSAMAgentLogic.volume_nodes import volume_from_node
from Testing.fixtures.chat_server import ScriptedChatServer

STOP = {"content": tool_call_text("stop_action", {})}


def kidney_box_reply(node, kidney) -> tuple[int, dict]:
    """The key slice and an agent reply that boxes the kidney there."""
    plane = SlicePlane.for_view(volume_from_node(node).geometry, "axial")
    truth = plane.to_display(kidney)
    key = int(np.argmax(truth.sum(axis=(1, 2))))
    letterbox = Letterbox.fit(plane.image_shape, plane.pixel_spacing)
    box = Box.around(truth[key], 3)
    grid = [*letterbox.to_grid(box.x0, box.y0), *letterbox.to_grid(box.x1, box.y1)]
    return key, {"content": tool_call_text("add_bbox", {"bbox_2d": grid})}


def run_targets(logic, node, segmentation, target: str, script, key: int):
    with ScriptedChatServer(script) as server:
        job = SegmentationJob(target=target, key_slice=key, policy="endpoint", endpoint_url=server.url, api_key="k",
                              slice_range=(key - 2, key + 2))
        return logic.process(node, segmentation, None, job)


def contents(segmentation, node, report):
    return [segment_array(segmentation, segment_id, node) for segment_id in report.segment_ids]


def test_one_segment_per_line_in_one_undo_step_overlaps_kept_by_default(scene, logic, phantom_node):
    node, kidney = phantom_node
    key, box = kidney_box_reply(node, kidney)
    segmentation = selftest.new_segmentation(scene, node)
    report = run_targets(logic, node, segmentation, "right kidney\nkidney", [box, STOP, box, STOP], key)
    names = [segmentation.GetSegmentation().GetSegment(segment_id).GetName() for segment_id in report.segment_ids]
    assert names == ["right kidney", "kidney"] and report.failed == []
    first, second = contents(segmentation, node, report)
    assert first.sum() > 500 and np.array_equal(first, second)  # no Segment Editor yet: other segments untouched
    assert "right kidney: " in report.summary and "; kidney: " in report.summary
    logic.undo()
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 0  # both segments went with one undo


def test_the_segment_editor_overwrite_setting_resolves_overlaps(scene, logic, phantom_node):
    node, kidney = phantom_node
    key, box = kidney_box_reply(node, kidney)
    editor = scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
    editor.SetSingletonTag(SEGMENT_EDITOR_SINGLETON)
    editor.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteAllSegments)
    segmentation = selftest.new_segmentation(scene, node)
    report = run_targets(logic, node, segmentation, "right kidney; kidney", [box, STOP, box, STOP], key)
    first, second = contents(segmentation, node, report)
    assert second.sum() > 500 and not (first & second).any()  # the later target took the shared voxels


def test_a_failing_target_is_reported_and_the_others_written(scene, logic, phantom_node):
    node, kidney = phantom_node
    key, box = kidney_box_reply(node, kidney)
    segmentation = selftest.new_segmentation(scene, node)
    report = run_targets(logic, node, segmentation, "spleen\nright kidney", [STOP, STOP, box, STOP], key)  # a stop is asked again once
    assert len(report.failed) == 1 and report.failed[0].startswith("spleen: the agent found no 'spleen'")
    assert [segmentation.GetSegmentation().GetSegment(s).GetName() for s in report.segment_ids] == ["right kidney"]
    assert "spleen: the agent found no" in report.summary and contents(segmentation, node, report)[0].sum() > 500


def test_several_targets_refuse_an_existing_segment(scene, logic, phantom_node):
    node, _ = phantom_node
    segmentation = selftest.new_segmentation(scene, node)
    existing = segmentation.GetSegmentation().AddEmptySegment("", "mine", [1, 0, 0])
    job = SegmentationJob(target="liver\nspleen", key_slice=5, policy="endpoint", endpoint_url="http://127.0.0.1:9/v1")
    with pytest.raises(PromptError, match="several targets make one new segment each"):
        logic.process(node, segmentation, existing, job)
