"""Failed and cancelled runs leave their record: `segment --save-trajectory` on a real CT
head with the tiny random Qwen3-VL, and with real OpenAI-compatible endpoints that answer
garbage, time out, or during whose turn the user presses Ctrl+C."""

from __future__ import annotations

import json
import signal
import subprocess

import numpy as np
import pytest

from MedSAMAgentLib import cli, segmenters
from MedSAMAgentLib.agent.protocol import tool_call_text
from MedSAMAgentLib.agent.records import read_records
from MedSAMAgentLib.agent.view import Letterbox
from MedSAMAgentLib.io.volumes import read_volume
from MedSAMAgentLib.orientation import SlicePlane
from MedSAMAgentLib.prompts import Box
from Testing.fixtures.anatomy import ct_head
from Testing.fixtures.chat_server import ScriptedChatServer
from Testing.fixtures.server import REPOSITORY, environment, medsam_agent_command

RECORD_NOTE = " (the agent's record is in "


@pytest.fixture(scope="module")
def head():
    """The CT head atlas: its path, the brain's largest axial slice (display index) and a
    box around the brain there, on the 0-999 grid the model answers on."""
    path, brain = ct_head()
    plane = SlicePlane.for_view(read_volume(path, log=lambda _: None).geometry, "axial")
    truth = plane.to_display(brain)
    key = int(np.argmax(truth.sum(axis=(1, 2))))
    letterbox = Letterbox.fit(plane.image_shape, plane.pixel_spacing)
    box = Box.around(truth[key], 4)
    return path, key, [*letterbox.to_grid(box.x0, box.y0), *letterbox.to_grid(box.x1, box.y1)]


@pytest.fixture
def segmenter_here(litemedsam, monkeypatch):
    monkeypatch.setattr(segmenters, "create_segmenter", lambda *args, **kwargs: litemedsam)


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr[-2000:]
    return lines[0][len("error: "):]


def check_failed_record(folder, line: str, status: str = "failed"):
    """The error line names the folder; the folder's outcome holds the same line; each run
    has its end reason and a PNG per turn. Returns (outcome, records)."""
    message, _, named = line.partition(RECORD_NOTE)
    assert named == f"{folder})", line
    outcome, records = read_records(folder)
    assert (outcome["status"], outcome["error"]) == (status, message)
    index = json.loads((folder / "trajectory.json").read_text())["runs"]
    for run, record in zip(index, records, strict=True):
        assert run["end_reason"] == record.end_reason and record.turns
        assert len(list((folder / run["folder"]).glob("turn*.png"))) == len(record.turns)
        assert all(turn.picture_png.startswith(b"\x89PNG") for turn in record.turns)
    return outcome, records


def test_the_tiny_random_qwen_fails_cleanly_and_leaves_its_record(tmp_path, head, tiny_qwen_dir, segmenter_here, capsys):
    path, key, _ = head
    folder, output = tmp_path / "record", tmp_path / "brain.seg.nrrd"
    with pytest.warns(RuntimeWarning, match="runs on the CPU"):
        status = cli.main(["segment", str(path), "--target", "brain", "--slice", str(key), "-o", str(output), "--policy", "qwen",
                           "--agent-model", str(tiny_qwen_dir), "--device", "cpu", "--window", "brain", "--save-trajectory", str(folder)])
    assert status == cli.EXIT_USER_ERROR and not output.exists()
    line = error_line(capsys.readouterr().err)
    _, records = check_failed_record(folder, line)
    key_run = records[0]
    assert (key_run.role, key_run.slice_index) == ("key", key)
    # random weights answer noise: the line names the end reason the record holds, and the
    # record keeps every raw answer and why it was refused
    assert line.startswith(f"the agent found no 'brain' on slice {key} ({key_run.end_reason})")
    assert key_run.end_reason == "invalid_output" and key_run.invalid_turns == len(key_run.turns) == 2
    assert all(turn.text and turn.label == "invalid: no <tool_call> in the answer" for turn in key_run.turns)


@pytest.mark.parametrize("garbage, end_reason", [
    ("I think the brain is in the middle of the image.", "policy_error"),  # never a tool call
    ('<tool_call>\n{"name": "add_bbox", "arguments": {"bbox_2d": "the brain"}}\n</tool_call>', "invalid_output"),
])
def test_an_endpoint_answering_garbage_leaves_the_record(tmp_path, head, segmenter_here, capsys, garbage, end_reason):
    path, key, _ = head
    folder = tmp_path / "record"
    with ScriptedChatServer([{"content": garbage}] * 2) as model:
        status = cli.main(["segment", str(path), "--target", "brain", "--slice", str(key), "-o", str(tmp_path / "out.nrrd"),
                           "--policy", "endpoint", "--endpoint", model.url, "--save-trajectory", str(folder)])
    assert status == cli.EXIT_USER_ERROR
    line = error_line(capsys.readouterr().err)
    _, [key_run] = check_failed_record(folder, line)
    assert key_run.end_reason == end_reason
    assert key_run.turns[0].text == garbage and not key_run.turns[0].valid
    if end_reason == "policy_error":  # the endpoint's own error line, kept with the run it stopped
        assert "answered 2 times without a tool call" in key_run.error and line.startswith(key_run.error)
        assert len(key_run.turns) == 1
    else:
        assert line.startswith(f"the agent found no 'brain' on slice {key} (invalid_output)") and len(key_run.turns) == 2


def test_an_endpoint_that_times_out_leaves_the_turns_before(tmp_path, head, segmenter_here, capsys):
    path, key, grid = head
    folder = tmp_path / "record"
    slow = {"sleep": 3, "content": tool_call_text("stop_action", {})}
    with ScriptedChatServer([{"content": tool_call_text("add_bbox", {"bbox_2d": grid})}] + [slow] * 3) as model:
        status = cli.main(["segment", str(path), "--target", "brain", "--slice", str(key), "-o", str(tmp_path / "out.nrrd"),
                           "--policy", "endpoint", "--endpoint", model.url, "--endpoint-timeout", "1", "--window", "brain",
                           "--save-trajectory", str(folder)])
    assert status == cli.EXIT_USER_ERROR
    line = error_line(capsys.readouterr().err)
    _, [key_run] = check_failed_record(folder, line)
    assert line.startswith(f"agent endpoint {model.url}/chat/completions failed after 3 attempts: timed out")
    assert (key_run.end_reason, key_run.error) == ("policy_error", line.partition(RECORD_NOTE)[0])
    assert [turn.label for turn in key_run.turns] == ["box"] and key_run.turns[0].mask_pixels > 1000


def test_ctrl_c_cancels_at_the_next_turn_and_leaves_the_record(tmp_path, head):
    """A real `medsam-agent segment` process; the endpoint presses Ctrl+C for the user
    while the model answers the second turn."""
    path, key, grid = head
    folder, output = tmp_path / "record", tmp_path / "out.nrrd"
    process = None

    def interrupt(body):
        process.send_signal(signal.SIGINT)
        return {"sleep": 0.5, "content": tool_call_text("stop_action", {})}

    with ScriptedChatServer([{"content": tool_call_text("add_bbox", {"bbox_2d": grid})}, interrupt]) as model:
        process = subprocess.Popen(
            medsam_agent_command("segment", str(path), "--target", "brain", "--slice", str(key), "-o", str(output), "--policy",
                                 "endpoint", "--endpoint", model.url, "--device", "cpu", "--window", "brain", "--save-trajectory",
                                 str(folder)),
            stderr=subprocess.PIPE, text=True, encoding="utf-8", env=environment(), cwd=REPOSITORY,
        )
        _, stderr = process.communicate(timeout=600)
    assert process.returncode == cli.EXIT_USER_ERROR, stderr[-3000:]
    assert "cancelling at the next agent turn or slice" in stderr
    line = error_line(stderr)
    assert line.startswith("cancelled by the user; nothing was changed")
    _, [key_run] = check_failed_record(folder, line, status="cancelled")
    assert key_run.end_reason == "cancelled" and [turn.label for turn in key_run.turns] == ["box"]
    assert not output.exists()


def test_a_run_that_fails_before_the_agent_acts_still_writes_its_outcome(tmp_path, head, capsys):
    from Testing.fixtures.server import free_port

    path, key, _ = head
    folder = tmp_path / "record"
    endpoint = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: the first turn fails
    status = cli.main(["segment", str(path), "--target", "brain", "--slice", str(key), "-o", str(tmp_path / "out.nrrd"), "--policy",
                       "endpoint", "--endpoint", endpoint, "--save-trajectory", str(folder)])
    assert status == cli.EXIT_USER_ERROR
    line = error_line(capsys.readouterr().err)
    message, _, named = line.partition(RECORD_NOTE)
    assert endpoint in message and named == f"{folder})"
    outcome, [record] = read_records(folder)
    assert (outcome["status"], outcome["error"], outcome["error_type"]) == ("failed", message, "AgentError")
    assert record.end_reason == "policy_error" and record.turns == []


def test_a_missing_agent_model_is_refused_before_the_run_and_writes_nothing(tmp_path, head, capsys):
    path, key, _ = head
    folder = tmp_path / "record"
    status = cli.main(["segment", str(path), "--target", "brain", "--slice", str(key), "-o", str(tmp_path / "out.nrrd"), "--policy",
                       "qwen", "--agent-model", str(tmp_path / "no-model"), "--save-trajectory", str(folder)])
    assert status == cli.EXIT_USER_ERROR
    assert error_line(capsys.readouterr().err).startswith(f"agent model not found: {tmp_path / 'no-model'}")
    assert not folder.exists() and not (tmp_path / "out.nrrd").exists()