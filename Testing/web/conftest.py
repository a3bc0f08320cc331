"""`medsam-agent web` started on localhost for the test (a real process, a real gateway,
real session processes) and stopped after it, and real headless Chromium pages on it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from MedSAMAgentLib.io.writers import write_volume
from MedSAMAgentLib.phantom import abdominal_phantom
from Testing.fixtures.browser import headless_chromium
from Testing.fixtures.chat_server import ScriptedChatServer

START_SECONDS = 60
DEMO_VOLUME = "sample_abdomen_ct.nrrd"  # the name the demo writes it under
WINDOW = (1400, 900)


@dataclass
class Workstation:
    url: str
    output: Path
    data: Path
    process: subprocess.Popen


@contextlib.contextmanager
def running_workstation(folder: Path, *arguments: str, environment: dict[str, str] | None = None) -> Iterator[Workstation]:
    """`medsam-agent web ARGUMENTS`, with `environment` added to this process's."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data, output = folder / "data", folder / "output"
    data.mkdir(parents=True, exist_ok=True)
    log = (folder / "workstation.log").open("wb")
    command = [sys.executable, "-m", "MedSAMAgentLib.cli", "web", "--port", str(port), "--data", str(data), "--output", str(output),
               "--device", "cpu", *arguments]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(environment or {})})
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"medsam-agent web did not start: {(folder / 'workstation.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield Workstation(f"http://127.0.0.1:{port}/", output, data, process)
    finally:
        process.send_signal(signal.SIGINT)  # the gateway stops its session processes
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def demo_phantom():
    """The demo's generated CT and its exact organs."""
    return abdominal_phantom()


@pytest.fixture(scope="session")
def agent_endpoint() -> Iterator[ScriptedChatServer]:
    """The agent for typed targets: an OpenAI-compatible server on localhost answering what
    a test scripts (`steps`)."""
    with ScriptedChatServer([]) as server:
        yield server


@pytest.fixture(scope="module")
def workstation(tmp_path_factory, demo_phantom, agent_endpoint) -> Iterator[Workstation]:
    """A workstation on this computer only (no keys), its data folder holding the demo CT,
    its agent behind `agent_endpoint`."""
    folder = tmp_path_factory.mktemp("workstation")
    (folder / "data").mkdir()
    write_volume(demo_phantom[0], folder / "data" / DEMO_VOLUME)
    with running_workstation(folder, "--policy", "endpoint", "--endpoint", agent_endpoint.url) as station:
        yield station


@pytest.fixture
def browser(tmp_path) -> Iterator:
    """A function giving a new Chromium (its own profile, so its own session) each call."""
    with contextlib.ExitStack() as stack:
        def new_browser(name: str = "browser"):
            driver = stack.enter_context(headless_chromium(tmp_path / name))
            driver.set_window_size(*WINDOW)
            return driver

        yield new_browser
