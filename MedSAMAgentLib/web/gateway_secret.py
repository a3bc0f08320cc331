"""The secret between the gateway and a session's process.

A session's process listens on a localhost port, where any local user or program could
reach it directly and so skip the gateway's key and cookie checks (and open another
person's session). The gateway therefore gives each session process its own secret at
start, in the process's environment (readable by the same user only, unlike a command
line), and adds it to every request and websocket it forwards; the session's process
answers nothing that lacks it."""

from __future__ import annotations

import hmac
import os
import secrets

from aiohttp import web

ENVIRONMENT = "MEDSAM_AGENT_SESSION_SECRET"
HEADER = "X-MedSAM-Agent-Session-Secret"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def take_from_environment() -> str | None:
    """The secret the gateway gave this process, removed from its environment so that no
    program it starts inherits it."""
    return os.environ.pop(ENVIRONMENT, None) or None


def only_from_the_gateway(secret: str):
    """An aiohttp middleware refusing (403) any request without `secret` in `HEADER`,
    compared in constant time; the websocket's opening request passes through it too."""
    expected = secret.encode()

    @web.middleware
    async def check(request: web.Request, handler):
        if not hmac.compare_digest(request.headers.get(HEADER, "").encode(), expected):
            raise web.HTTPForbidden(text="open the workstation through its own address")
        return await handler(request)

    return check
