"""A department server on a machine without the hub: it starts on the weights it has, says
what is missing and how to fetch it, and never waits on the network."""

from __future__ import annotations

import time

import pytest
import requests

from MedSAMAgentLib.errors import AgentError, CheckpointError
from MedSAMAgentLib.remote import RemoteEngine
from Testing.fixtures.server import ServerProcess, kidney_request, run_medsam_agent
from Testing.service.conftest import offline, online

AGENT = "Saint-lsy/MedSAM-Agent-Qwen3-VL-8B-MedSAM2"


def test_without_its_agent_model_a_server_starts_without_the_agent_and_says_why(tmp_path, silent_hub, phantom):
    server = ServerProcess(tmp_path, tmp_path / "store", environment=online(silent_hub.url, tmp_path / "home"))
    started = time.monotonic()
    with server:
        print(f"answering after {time.monotonic() - started:.1f} s")
        warning = next(line for line in server.log().splitlines() if line.startswith("warning: this server runs without its agent"))
        assert f"the model {AGENT} is not on this machine" in warning and "medsam-agent models fetch agent --to DIR" in warning
        info = requests.get(f"{server.url}/v1/info", timeout=10).json()
        assert info["agent"] is None and info["agent_unavailable"] == warning.removeprefix("warning: ")

        engine = RemoteEngine(server.url)
        with pytest.raises(AgentError, match=f"runs without its agent: the model {AGENT} is not on this machine.*models fetch agent"):
            engine.run(kidney_request(phantom, prompts=None, target="right kidney"))
        with pytest.raises(CheckpointError, match="MedSAM2_latest.pt from wanglab/MedSAM2 is not on this machine.*models fetch medsam2"):
            engine.run(kidney_request(phantom, segmenter="medsam2"))
        assert server.uploads() == 0  # both refused at submission, before the volume was sent
        assert engine.run(kidney_request(phantom)).mask.any()  # prompts are still served
    assert silent_hub.connections() == 0  # the hub was never asked


def test_with_the_copied_weights_the_server_runs_its_agent(tmp_path, copied_models):
    with ServerProcess(tmp_path, tmp_path / "store", "--from", str(copied_models), environment=offline(tmp_path / "home")) as server:
        info = requests.get(f"{server.url}/v1/info", timeout=10).json()
    assert info["agent_unavailable"] is None and info["agent"].startswith(f"qwen {AGENT}")
    assert "warning: this server runs without its agent" not in server.log()


def test_without_its_segmenters_weights_a_server_exits_at_once_with_one_line(tmp_path, silent_hub):
    done = run_medsam_agent("serve", "--port", "1", "--store", str(tmp_path / "store"), "--segmenter", "medsam2", "--no-agent",
                            **online(silent_hub.url, tmp_path / "home"))
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr
    assert "MedSAM2_latest.pt from wanglab/MedSAM2 is not on this machine" in errors[0]
    assert "not asked (this server uses the weights on this machine only)" in errors[0] and "models fetch medsam2" in errors[0]
    assert silent_hub.connections() == 0
    assert not (tmp_path / "store").exists()
