"""The remote engine against a real server on localhost: the same results as this
computer's engine, voxel for voxel, and one clear line for every refusal."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from MedSAMAgentLib.engine.interface import SegmentationRequest
from MedSAMAgentLib.errors import Cancelled, MedSAMAgentError, PromptError, ServerError
from MedSAMAgentLib.io.volumes import read_volume
from MedSAMAgentLib.orientation import SlicePlane
from MedSAMAgentLib.prompts import Box, SlicePrompts
from MedSAMAgentLib.remote import RemoteEngine
from MedSAMAgentLib.remote.wire import API_VERSION
from Testing.fixtures.anatomy import ct_head
from Testing.fixtures.server import kidney_request


def test_a_real_ct_segments_the_same_here_and_on_the_server(server, keys, local_engine):
    path, brain = ct_head()
    volume = read_volume(path, log=lambda _: None)
    plane = SlicePlane.for_view(volume.geometry, "axial")
    truth = plane.to_display(brain)
    key = int(np.argmax(truth.sum(axis=(1, 2))))
    request = SegmentationRequest(volume, window="brain", key_slice=key, prompts=SlicePrompts(box=Box.around(truth[key], 4)),
                                  slice_range=(key - 2, key + 2))
    remote = RemoteEngine(server.url, api_key=keys[1]["alice"])
    uploads = server.uploads()
    steps = []
    on_server = remote.run(request, progress=lambda step, done, total: steps.append(step))
    here = local_engine.run(request)
    assert np.array_equal(on_server.mask, here.mask) and on_server.mask.any()
    assert (on_server.key_slice, on_server.window) == (here.key_slice, here.window)
    assert server.uploads() == uploads + 1 and any(step.startswith("uploading the volume") for step in steps)
    again = remote.run(request)  # the server holds the volume: it is not sent again
    assert np.array_equal(again.mask, here.mask) and server.uploads() == uploads + 1


def test_edits_are_kept_through_the_server_as_they_are_here(server, keys, phantom, local_engine):
    first = local_engine.run(kidney_request(phantom))
    plane = SlicePlane.for_view(phantom[0].geometry, "axial")
    stack = plane.to_display(first.mask)
    key = first.key_slice
    erased_half = stack[key + 1].copy()
    erased_half[:, : erased_half.shape[1] // 2 + 20] = False
    rerun = kidney_request(phantom, prompts=None, key_mask=stack[key], locked={key + 1: erased_half, key - 1: np.zeros_like(erased_half)})
    here = plane.to_display(local_engine.run(rerun).mask)
    on_server = plane.to_display(RemoteEngine(server.url, api_key=keys[1]["bob"]).run(rerun).mask)
    assert np.array_equal(on_server, here)
    assert np.array_equal(on_server[key + 1], erased_half) and not on_server[key - 1].any()


def test_a_bad_request_fails_as_it_does_here(server, keys, phantom, local_engine):
    request = kidney_request(phantom, key_slice=phantom[0].array.shape[0] + 5, slice_range=None)
    with pytest.raises(PromptError) as here:
        local_engine.run(request)
    with pytest.raises(PromptError) as on_server:
        RemoteEngine(server.url, api_key=keys[1]["alice"]).run(request)
    assert str(on_server.value) == str(here.value) and "is outside the volume" in str(here.value)


def test_a_missing_or_wrong_key_is_refused_with_where_to_check(server, keys, phantom):
    request = kidney_request(phantom)
    for key in (None, "not-a-key", keys[1]["alice"] + "x"):
        with pytest.raises(ServerError) as refused:
            RemoteEngine(server.url, api_key=key, key_source="$MEDSAM_AGENT_SERVER_KEY").run(request)
        assert str(refused.value) == f"the server at {server.url} refused the API key: check $MEDSAM_AGENT_SERVER_KEY"


def test_an_unreachable_server_is_one_line(phantom):
    from Testing.fixtures.server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerError, match=f"cannot reach the MedSAM-Agent server at {url} \\(connection refused\\)"):
        RemoteEngine(url, unreachable_grace=0.5).run(kidney_request(phantom))


def test_a_server_of_another_api_version_is_refused_naming_what_to_upgrade(phantom):
    """A server that speaks the next API version (a real HTTP server answering /health as a
    newer MedSAM-Agent server would)."""
    class NewerServer(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"status": "ok", "api_version": API_VERSION + 1, "server_version": "9.0.0"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    newer = ThreadingHTTPServer(("127.0.0.1", 0), NewerServer)
    threading.Thread(target=newer.serve_forever, daemon=True).start()
    try:
        newer_version = f"speaks API version {API_VERSION + 1}, this client .* speaks {API_VERSION}: upgrade this client"
        with pytest.raises(ServerError, match=newer_version):
            RemoteEngine(f"http://127.0.0.1:{newer.server_address[1]}").run(kidney_request(phantom))
    finally:
        newer.shutdown()
        newer.server_close()


def test_cancel_stops_the_job_and_the_server_takes_the_next_one(server, keys, phantom, local_engine):
    remote = RemoteEngine(server.url, api_key=keys[1]["alice"])
    long_request = kidney_request(phantom, half_range=12)
    stop = threading.Event()

    def progress(step, done, total):
        if step.startswith("litemedsam: slice") and done >= 2:
            stop.set()

    with pytest.raises(Cancelled):
        remote.run(long_request, progress=progress, cancel=stop.is_set)
    short = kidney_request(phantom)
    assert np.array_equal(remote.run(short).mask, local_engine.run(short).mask)
    cancelled = [line for line in server.log().splitlines() if " from alice cancelled in " in line]
    assert len(cancelled) == 1, server.log()[-2000:]
    done, total = map(int, cancelled[0].rsplit("at step ", 1)[1].split(" of "))
    assert done < total - 5, cancelled[0]  # stopped within a few slices of the cancel, far from the end


def agent_script(phantom) -> list[dict]:
    """A box around the kidney on its largest slice, then stop: as the model would answer."""
    from MedSAMAgentLib.agent.protocol import tool_call_text
    from MedSAMAgentLib.agent.view import Letterbox

    request = kidney_request(phantom)
    plane = SlicePlane.for_view(request.volume.geometry, "axial")
    letterbox = Letterbox.fit(plane.image_shape, plane.pixel_spacing)
    box = request.prompts.box
    grid = [*letterbox.to_grid(box.x0, box.y0), *letterbox.to_grid(box.x1, box.y1)]
    return [{"content": tool_call_text("add_bbox", {"bbox_2d": grid})}, {"content": tool_call_text("stop_action", {})}]


def test_the_agent_on_the_server_does_what_it_does_here(tmp_path, keys, phantom, local_engine):
    """The server runs the agent behind an OpenAI-compatible endpoint (as with vLLM); a
    success and a failure give the same mask, error and record as this computer, and a
    cancelled job brings back the record of the turns it took."""
    from MedSAMAgentLib.engine.local import PolicySpec
    from Testing.fixtures.chat_server import ScriptedChatServer
    from Testing.fixtures.server import ServerProcess

    garbage = [{"content": "I think the kidney is somewhere."}] * 2
    request = kidney_request(phantom, prompts=None, target="right kidney in abdomen CT")
    stop = threading.Event()

    def press_cancel(body):  # the user cancels while the model answers the second turn
        stop.set()
        return {"sleep": 1.0, **agent_script(phantom)[1]}

    with ScriptedChatServer((agent_script(phantom) + garbage) * 2 + [agent_script(phantom)[0], press_cancel]) as model:
        local_engine.policy_spec = PolicySpec("endpoint", model="medsam-agent", endpoint=model.url)
        here = local_engine.run(request)
        with pytest.raises(MedSAMAgentError) as failed_here:
            local_engine.run(request)
        options = ("--policy", "endpoint", "--endpoint", model.url, "--agent-model", "medsam-agent")
        with ServerProcess(tmp_path, tmp_path / "store", *options, keys=keys[0]) as server:
            remote = RemoteEngine(server.url, api_key=keys[1]["alice"])
            there = remote.run(request)
            with pytest.raises(MedSAMAgentError) as failed_there:
                remote.run(request)
            with pytest.raises(Cancelled) as cancelled_there:
                remote.run(request, cancel=stop.is_set)
    assert np.array_equal(there.mask, here.mask) and there.mask.any()
    assert untimed(there.records) == untimed(here.records) and [turn.label for turn in there.records[0].turns] == ["box", "stop"]
    assert str(failed_there.value) == str(failed_here.value) and "answered 2 times without a tool call" in str(failed_here.value)
    assert type(failed_there.value) is type(failed_here.value)
    assert untimed(failed_there.value.records) == untimed(failed_here.value.records)
    [cancelled_run] = cancelled_there.value.records  # the cancelled job's record travels back too
    assert (cancelled_run.role, cancelled_run.end_reason, [turn.label for turn in cancelled_run.turns]) == ("key", "cancelled", ["box"])


def untimed(records) -> list[dict]:
    """Records as JSON without the seconds each turn took (which differ from run to run)."""
    runs = [record.as_json() for record in records]
    for run in runs:
        for turn in run["turns"]:
            turn.pop("seconds")
    return runs
