"""The module keeps the agent's record of its last run, finished, failed or cancelled, lists
it and saves it as a record folder; on a real MRML scene, the agent behind a real endpoint."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from MedSAMAgentLib.agent.protocol import tool_call_text
from MedSAMAgentLib.agent.records import read_records
from MedSAMAgentLib.agent.view import Letterbox
from MedSAMAgentLib.errors import Cancelled, MedSAMAgentError
from MedSAMAgentLib.orientation import SlicePlane
from MedSAMAgentLib.prompts import Box
from MedSAMAgentLogic import selftest
from MedSAMAgentLogic.segmentation_logic import SegmentationJob
from MedSAMAgentLogic.volume_nodes import volume_from_node
from Testing.fixtures.chat_server import ScriptedChatServer

STOP = {"content": tool_call_text("stop_action", {})}


@pytest.fixture
def kidney_job(phantom_node):
    """The right kidney's largest axial slice as key slice, and the box a good model would draw."""
    node, kidney = phantom_node
    plane = SlicePlane.for_view(volume_from_node(node).geometry, "axial")
    truth = plane.to_display(kidney)
    key = int(np.argmax(truth.sum(axis=(1, 2))))
    letterbox, box = Letterbox.fit(plane.image_shape, plane.pixel_spacing), Box.around(truth[key], 3)
    answer = {"content": tool_call_text("add_bbox", {"bbox_2d": [*letterbox.to_grid(box.x0, box.y0), *letterbox.to_grid(box.x1, box.y1)]})}

    def job(url: str) -> SegmentationJob:
        return SegmentationJob(target="right kidney in abdomen CT", key_slice=key, policy="endpoint", endpoint_url=url,
                               slice_range=(key - 2, key + 2))

    return job, answer, key


def test_a_failed_run_keeps_its_record_changes_nothing_and_saves(tmp_path, scene, logic, phantom_node, kidney_job):
    node, _ = phantom_node
    job, _, key = kidney_job
    segmentation = selftest.new_segmentation(scene, node)
    before = selftest.snapshot(segmentation, node)
    garbage = {"content": '<tool_call>\n{"name": "add_bbox", "arguments": {"bbox_2d": "the kidney"}}\n</tool_call>'}
    with ScriptedChatServer([garbage] * 2) as model:
        with pytest.raises(MedSAMAgentError, match="found no 'right kidney in abdomen CT'") as failed:
            logic.process(node, segmentation, None, job(model.url))
    selftest.assert_unchanged(before, selftest.snapshot(segmentation, node), "after the failed agent run")
    run = logic.last_run
    assert (run.outcome["status"], run.outcome["error"]) == ("failed", str(failed.value))
    lines = run.lines()
    assert [line.text for line in lines] == [
        f"key slice {key}: ended by invalid_output",
        "  1: invalid: bbox_2d must be a list of 4 numbers, got 'the kidney' (invalid answer; asking again)",
        "  2: invalid: bbox_2d must be a list of 4 numbers, got 'the kidney'",
    ]
    assert lines[1].tooltip == garbage["content"] and lines[1].picture_png.startswith(b"\x89PNG")
    saved = logic.save_last_run(tmp_path)
    outcome, records = read_records(saved)
    assert outcome["status"] == "failed" and outcome["target"] == "right kidney in abdomen CT" and records == run.records
    assert saved.startswith(str(tmp_path / "medsam-agent-right-kidney-in-abdomen-ct-"))
    assert logic.save_last_run(tmp_path) != saved  # a second save never overwrites the first


def test_a_finished_and_a_cancelled_run_each_replace_the_record(tmp_path, scene, logic, phantom_node, kidney_job):
    node, _ = phantom_node
    job, box, key = kidney_job
    segmentation = selftest.new_segmentation(scene, node)
    with pytest.raises(MedSAMAgentError, match="there is no run to save yet"):
        logic.save_last_run(tmp_path)
    stop = threading.Event()

    def press_cancel(body):
        stop.set()
        return STOP

    with ScriptedChatServer([box, STOP, box, press_cancel]) as model:
        report = logic.process(node, segmentation, None, job(model.url))
        done = logic.last_run
        assert done.outcome == {"status": "done", "key_slice": key, "corrections": []} and done.records == report.records
        assert [line.text for line in done.lines()] == [f"key slice {key}: ended by stop_action", "  1: box", "  2: stop"]
        before = selftest.snapshot(segmentation, node)
        with pytest.raises(Cancelled):
            logic.process(node, segmentation, report.segment_id, job(model.url), cancel=stop.is_set)
    selftest.assert_unchanged(before, selftest.snapshot(segmentation, node), "after the cancelled run")
    cancelled = logic.last_run
    assert cancelled.outcome["status"] == "cancelled"
    assert [line.text for line in cancelled.lines()] == [f"key slice {key}: ended by cancelled", "  1: box"]
    outcome, records = read_records(logic.save_last_run(tmp_path))
    assert outcome["status"] == "cancelled" and records[0].end_reason == "cancelled"
