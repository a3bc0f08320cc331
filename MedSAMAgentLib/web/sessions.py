"""The session processes: one per browser session, each a `session_app` on a free
localhost port with its own output folder. A session ends when its process exits (its page
closed for a while) or when the workstation stops."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import gateway_secret

START_SECONDS = 180
log = logging.getLogger("medsam_agent.web")


@dataclass
class SessionSettings:
    output: Path
    data: Path | None = None
    segmenter: str = "litemedsam"
    device: str = "auto"
    runtime: str = "auto"
    policy: str = "qwen"
    agent_model: str | None = None
    endpoint: str | None = None
    server_url: str | None = None
    idle_exit: int = 30


@dataclass
class Session:
    token: str  # secret: in the session's cookie and its address
    name: str  # not secret: names its output folder
    port: int
    secret: str  # the gateway's alone: sent on every forwarded request (`gateway_secret`)
    process: asyncio.subprocess.Process
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class SessionStartError(Exception):
    pass


class Sessions:
    def __init__(self, settings: SessionSettings):
        self.settings = settings
        self.live: dict[str, Session] = {}

    def find(self, token: str | None) -> Session | None:
        session = self.live.get(token or "")
        return session if session is not None and not session.ended.is_set() else None

    async def start(self) -> Session:
        token, name, secret = secrets.token_urlsafe(24), secrets.token_hex(4), gateway_secret.new_secret()
        port = _free_port()
        settings = self.settings
        arguments = [sys.executable, "-m", "MedSAMAgentLib.web.session_app", "--port", str(port),
                     "--output", str(settings.output / name), "--segmenter", settings.segmenter, "--device", settings.device, "--runtime", settings.runtime,
                     "--idle-exit", str(settings.idle_exit)]
        if settings.data is not None:
            arguments += ["--data", str(settings.data)]
        for option, value in (("--policy", settings.policy), ("--agent-model", settings.agent_model), ("--endpoint", settings.endpoint),
                              ("--server", settings.server_url)):
            if value:
                arguments += [option, value]
        # The department server's key and the agent endpoint's key, if any, reach the session
        # in the environment it inherits (as the command line reads them), and so does its
        # secret: never on a command line, which every local user can read.
        process = await asyncio.create_subprocess_exec(*arguments, stdin=asyncio.subprocess.DEVNULL,
                                                       env={**os.environ, gateway_secret.ENVIRONMENT: secret})
        session = Session(token, name, port, secret, process)
        asyncio.get_running_loop().create_task(self._watch(session))
        await self._wait_ready(session)
        self.live[token] = session
        return session

    async def _wait_ready(self, session: Session) -> None:
        for _ in range(START_SECONDS * 10):
            if session.ended.is_set():
                raise SessionStartError(f"the session process stopped at start (status {session.process.returncode})")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", session.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        session.process.terminate()
        raise SessionStartError(f"the session process did not start within {START_SECONDS} s")

    async def _watch(self, session: Session) -> None:
        status = await session.process.wait()
        session.ended.set()
        log.info("session %s ended (status %s)", session.name, status)
        self.live.pop(session.token, None)

    async def stop_all(self) -> None:
        for session in list(self.live.values()):
            if session.process.returncode is None:
                session.process.terminate()
        for session in list(self.live.values()):
            await session.process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
