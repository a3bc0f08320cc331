"""The server's error answers as the same errors a local run raises, one line each."""

from __future__ import annotations

import requests

from .. import errors
from ..agent.records import AgentRecord

# Errors a job may end with on the server, raised here as the same class a local run raises.
_SAME_CLASS = {
    cls.__name__: cls
    for cls in (errors.InputImageError, errors.PromptError, errors.CheckpointError, errors.AgentError, errors.Cancelled)
}


def kind(response: requests.Response) -> str:
    try:
        return str(response.json().get("type", ""))
    except (ValueError, AttributeError):
        return ""


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("error") or "").strip()
    except (ValueError, AttributeError):
        return response.text.strip().splitlines()[0][:160] if response.text.strip() else ""


def from_response(response: requests.Response, engine) -> errors.MedSAMAgentError:
    """One clear line for an HTTP error answer from the server at `engine.url`."""
    status, message = response.status_code, _message(response)
    if status == 401:
        return errors.ServerError(f"the server at {engine.url} refused the API key: check {engine.key_source}")
    if status == 426:
        return errors.ServerError(message)
    if status == 413:
        return errors.ServerError(f"the server at {engine.url} refused the upload as too large: {message}")
    if status == 422 and kind(response) in _SAME_CLASS:
        return _SAME_CLASS[kind(response)](message)
    if status == 422:
        return errors.ServerError(f"the server at {engine.url} refused the request: {message}")
    if status == 503:
        return errors.ServerError(f"the server at {engine.url} is busy or unavailable: {message or 'HTTP 503'}")
    return errors.ServerError(f"the server at {engine.url} answered HTTP {status}: {message or response.reason}")


def from_status(status: dict) -> errors.MedSAMAgentError:
    """The error a failed or cancelled job ended with, with the agent's record so far."""
    if status["status"] == "cancelled":
        error = errors.Cancelled()
    else:
        error = _SAME_CLASS.get(status.get("error_type"), errors.MedSAMAgentError)(status.get("error") or "the job failed on the server")
    error.records = [AgentRecord.from_json(record) for record in status.get("records", [])]
    return error
