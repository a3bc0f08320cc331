"""The `endpoint` policy against a real HTTP server on localhost speaking the OpenAI chat
API with scripted answers: a session that segments a structure, and every failure."""

from __future__ import annotations

import base64
import io
import json
import socket

import numpy as np
import pytest
from PIL import Image

from MedSAMAgentLib.agent.loop import END_STOP, run_agent
from MedSAMAgentLib.agent.policies.endpoint import EndpointPolicy
from MedSAMAgentLib.agent.protocol import tool_call_text
from MedSAMAgentLib.agent.view import Letterbox
from MedSAMAgentLib.errors import AgentError
from MedSAMAgentLib.metrics import dice
from MedSAMAgentLib.prompts import Box
from MedSAMAgentLib.segmenters.base import slice_frames
from Testing.fixtures.chat_server import ScriptedChatServer
from Testing.fixtures.segmenters import BoxFillSegmenter

STOP = {"content": tool_call_text("stop_action", {})}
SECRET = "sk-test-do-not-print-4242"


def kidney_slice(phantom):
    volume, organs = phantom
    frames = slice_frames(volume, "axial")
    truth = frames.plane.to_display(organs["right kidney"])
    index = int(np.argmax(truth.sum(axis=(1, 2))))
    return frames[index], truth[index]


def box_answer(image, truth) -> dict:
    letterbox = Letterbox.fit(image.shape[:2])
    box = Box.around(truth, margin=3)
    grid = [*letterbox.to_grid(box.x0, box.y0), *letterbox.to_grid(box.x1, box.y1)]
    return {"content": tool_call_text("add_bbox", {"bbox_2d": grid})}


def test_a_scripted_session_segments_the_kidney(phantom, litemedsam, monkeypatch):
    monkeypatch.setenv("MEDSAM_AGENT_API_KEY", SECRET)
    image, truth = kidney_slice(phantom)
    with ScriptedChatServer([box_answer(image, truth), STOP]) as server:
        policy = EndpointPolicy(server.url, model="medsam-agent")
        trajectory = run_agent(image, "right kidney in abdomen CT", policy, litemedsam)
    assert trajectory.end_reason == END_STOP and trajectory.actions == 1
    assert dice(trajectory.final_mask(), truth) >= 0.9
    first, second = server.requests
    assert first["model"] == "medsam-agent" and first["temperature"] == 0.0 and first["max_tokens"] == 128
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    picture = first["messages"][1]["content"][0]["image_url"]["url"]
    assert picture.startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(picture.split(",", 1)[1]))).size == (512, 512)
    assert server.headers[0]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(policy) and SECRET not in policy.describe()


def test_server_side_tool_calls_are_read(phantom):
    image, truth = kidney_slice(phantom)
    grid = json.loads(box_answer(image, truth)["content"].split("\n")[1])["arguments"]
    parsed = {"content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "add_bbox", "arguments": json.dumps(grid)}}]}
    with ScriptedChatServer([parsed, STOP]) as server:
        trajectory = run_agent(image, "right kidney", EndpointPolicy(server.url), BoxFillSegmenter())
    assert trajectory.actions == 1 and trajectory.turns[0].action.box == tuple(grid["bbox_2d"])


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def run_once(policy):
    return run_agent(np.zeros((64, 64, 3), np.uint8), "x", policy, BoxFillSegmenter())


def test_unreachable_server():
    with pytest.raises(AgentError, match=r"failed after 2 attempts: unreachable"):
        run_once(EndpointPolicy(closed_port_url(), retries=1))


def test_server_error_is_retried_then_reported():
    with ScriptedChatServer([{"status": 500, "body": "CUDA out of memory"}] * 2) as server:
        with pytest.raises(AgentError, match="failed after 2 attempts: HTTP 500 .*CUDA out of memory"):
            run_once(EndpointPolicy(server.url, retries=1))
    with ScriptedChatServer([{"status": 503}, {"content": tool_call_text("add_bbox", {"bbox_2d": [10, 10, 900, 900]})}, STOP]) as server:
        trajectory = run_once(EndpointPolicy(server.url, retries=1))
    assert trajectory.actions == 1  # the retry succeeded


def test_timeout():
    with ScriptedChatServer([{"sleep": 2.0, **STOP}]) as server:
        with pytest.raises(AgentError, match="failed after 1 attempts: timed out"):
            run_once(EndpointPolicy(server.url, timeout=0.5, retries=0))


def test_client_errors_are_not_retried_and_name_the_key_variable(monkeypatch):
    monkeypatch.setenv("MY_AGENT_KEY", SECRET)
    with ScriptedChatServer([{"status": 401, "body": "invalid api key"}]) as server:
        with pytest.raises(AgentError, match=r"HTTP 401 .*check the API key in \$MY_AGENT_KEY") as raised:
            run_once(EndpointPolicy(server.url, api_key_env="MY_AGENT_KEY"))
    assert SECRET not in str(raised.value) and len(server.requests) == 1


def test_garbage_answers():
    with ScriptedChatServer([{"raw": b"<html>proxy error</html>"}]) as server:
        with pytest.raises(AgentError, match="not JSON"):
            run_once(EndpointPolicy(server.url))
    with ScriptedChatServer([{"raw": b'{"object": "error"}'}]) as server:
        with pytest.raises(AgentError, match=r"without choices\[0\].message"):
            run_once(EndpointPolicy(server.url))


def test_a_model_that_does_not_emit_tool_calls():
    chatty = {"content": "I see a CT image of the abdomen with both kidneys visible."}
    with ScriptedChatServer([chatty, chatty]) as server:
        with pytest.raises(AgentError, match="answered 2 times without a tool call"):
            run_once(EndpointPolicy(server.url, model="gpt-general"))
