"""How the session tells its page what happened: a one-line message (info or error), and
`*_serial` counters that grow with each thing done (the page shows them in `data-*`
attributes; the browser tests wait on them)."""

from __future__ import annotations


def say(state, text: str, kind: str = "info") -> None:
    state.message, state.message_kind = text, kind
    count(state, "message_serial")


def count(state, serial: str) -> None:
    state[serial] += 1
