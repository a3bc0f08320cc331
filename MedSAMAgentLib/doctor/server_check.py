"""A department server as this client sees it: does it answer, does it speak this API
version, does it accept the key (never shown), and what does it run."""

from __future__ import annotations

from ..errors import MedSAMAgentError
from .findings import Section


def server_section(url: str, api_key: str | None, key_source: str) -> Section:
    from ..remote import RemoteEngine
    from ..remote.wire import API_VERSION

    section = Section(f"Server {url}")
    try:
        engine = RemoteEngine(url, api_key=api_key, key_source=key_source, unreachable_grace=0.0)
    except MedSAMAgentError as error:
        section.add("address", str(error), problem=True)
        return section
    try:
        try:
            health = engine.health()
        except MedSAMAgentError as error:
            section.add("answers", f"no: {error}", problem=True)
            return section
        section.add("answers", f"yes, medsam-agent {health.get('server_version', '?')}")
        theirs = health.get("api_version")
        if theirs != API_VERSION:
            side = "this client" if isinstance(theirs, int) and theirs > API_VERSION else "the server"
            section.add("api version", f"{theirs}, this client speaks {API_VERSION}: upgrade {side}", problem=True)
            return section
        section.add("api version", f"{theirs}, as this client")
        try:
            info = engine.server_info()
        except MedSAMAgentError as error:
            given = f"a key from {key_source}" if api_key else f"no key ({key_source} is not set)"
            section.add("key", f"refused ({given}): {error}", problem=True)
            return section
        section.add("key", "accepted" if api_key else "none needed (the server runs without keys)")
        section.add("runs", f"{info.get('default_segmenter')} (of {', '.join(info.get('segmenters', []))}) on {info.get('device')}")
        unavailable = info.get("segmenters_unavailable", {})
        if unavailable:
            section.add("no weights", f"for {', '.join(unavailable)} on the server (its administrator fetches them)")
        missing_agent = info.get("agent_unavailable")
        section.add("agent", info.get("agent") or missing_agent or "none (the server serves prompts only)", problem=bool(missing_agent))
        section.add("queue", f"{info.get('queue_waiting')} of {info.get('queue_limit')} waiting")
    finally:
        engine.close()
    return section
