"""Request bodies are refused with 413 as soon as they pass their limit: by the declared
Content-Length before reading, and by counting while reading (chunked uploads declare none)."""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.exceptions import HTTPException


class BodyTooLarge(HTTPException):
    """An HTTP exception, so that FastAPI passes it on unchanged while it reads a JSON body."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than the {limit} bytes this server accepts here")


class BodyLimit:
    """ASGI middleware; `limit_for(path)` gives the byte limit of a route's body."""

    def __init__(self, app, limit_for: Callable[[str], int]):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _refuse(send, limit)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


async def _refuse(send, limit: int) -> None:
    payload = json.dumps({"error": BodyTooLarge(limit).detail, "type": "TooLarge"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
