"""The address people open. With keys (`--api-keys`), it first asks for one, checked as the
department server checks it (`server.keys`: constant time, never logged). Each browser
session gets its own process (`sessions`); the gateway forwards the session's page, files
and websocket to it under `/s/<token>/`, and only to the browser holding that token in
its cookie."""

from __future__ import annotations

import asyncio
import hmac
import html
import logging

import aiohttp
from aiohttp import web

from ..server.keys import KeyFile
from . import gateway_secret
from .sessions import Sessions, SessionStartError

COOKIE = "medsam_agent_session"
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "upgrade", "content-length", "content-encoding", "host", "cookie"}
NOT_FORWARDED = HOP_HEADERS | {gateway_secret.HEADER.lower()}  # a browser's own copy of the header goes no further
log = logging.getLogger("medsam_agent.web")

LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>MedSAM-Agent</title></head>
<body style="font-family: sans-serif; margin: 4em;"><h2>MedSAM-Agent workstation</h2>
<form method="post" action="/login"><label>API key <input type="password" name="key" id="key" autofocus></label>
<button type="submit" id="login">Open</button></form><p id="login-error" style="color: #c00;">{error}</p></body></html>"""


def create_gateway(sessions: Sessions, keys: KeyFile | None) -> web.Application:
    app = web.Application(client_max_size=2 << 30)
    app["sessions"], app["keys"] = sessions, keys

    async def close(app: web.Application) -> None:
        await sessions.stop_all()

    app.on_cleanup.append(close)
    app.router.add_get("/", _home)
    app.router.add_post("/login", _login)
    app.router.add_route("*", "/s/{token}/{tail:.*}", _forward)
    return app


async def _home(request: web.Request) -> web.StreamResponse:
    sessions: Sessions = request.app["sessions"]
    session = sessions.find(request.cookies.get(COOKIE))
    if session is not None:
        raise web.HTTPFound(f"/s/{session.token}/")
    if request.app["keys"] is not None:
        return _login_page("")
    return await _new_session(sessions)


async def _login(request: web.Request) -> web.StreamResponse:
    keys: KeyFile | None = request.app["keys"]
    if keys is None:
        raise web.HTTPFound("/")
    form = await request.post()
    name = keys.name_of(str(form.get("key", "")))
    if name is None:
        log.warning("refused a key from %s", request.remote)
        return _login_page("That key is not accepted.", status=403)
    log.info("session opened for %s", name)
    return await _new_session(request.app["sessions"])


def _login_page(error: str, status: int = 200) -> web.Response:
    return web.Response(text=LOGIN_PAGE.format(error=html.escape(error)), content_type="text/html", status=status)


async def _new_session(sessions: Sessions) -> web.StreamResponse:
    try:
        session = await sessions.start()
    except SessionStartError as error:
        return web.Response(text=f"error: {error}", status=503)
    response = web.HTTPFound(f"/s/{session.token}/")
    response.set_cookie(COOKIE, session.token, httponly=True, samesite="Strict", path="/")
    return response


async def _forward(request: web.Request) -> web.StreamResponse:
    sessions: Sessions = request.app["sessions"]
    token = request.match_info["token"]
    session = sessions.find(token)
    if session is None or not hmac.compare_digest(request.cookies.get(COOKIE, ""), token):
        raise web.HTTPFound("/")
    target = f"http://127.0.0.1:{session.port}/{request.match_info['tail']}"
    if request.headers.get("upgrade", "").lower() == "websocket":
        return await _forward_websocket(request, target.replace("http://", "ws://", 1), session.secret)
    headers = {name: value for name, value in request.headers.items() if name.lower() not in NOT_FORWARDED}
    headers[gateway_secret.HEADER] = session.secret
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        async with client.request(request.method, target, params=request.query, data=await request.read(), headers=headers,
                                  allow_redirects=False) as answer:
            body = await answer.read()
            kept = {name: value for name, value in answer.headers.items() if name.lower() not in HOP_HEADERS - {"content-encoding"}}
            return web.Response(body=body, status=answer.status, headers=kept)


async def _forward_websocket(request: web.Request, target: str, secret: str) -> web.WebSocketResponse:
    browser = web.WebSocketResponse(max_msg_size=0, heartbeat=None)
    await browser.prepare(request)
    async with aiohttp.ClientSession() as client, \
            client.ws_connect(target, max_msg_size=0, headers={gateway_secret.HEADER: secret}) as session:
        async def pump(source, sink) -> None:
            async for message in source:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await sink.send_str(message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    await sink.send_bytes(message.data)
                else:
                    break
            await sink.close()

        await asyncio.gather(pump(browser, session), pump(session, browser), return_exceptions=True)
    return browser
