"""The agent model behind an OpenAI-compatible chat-completions server (vLLM, SGLang,
`transformers serve`): how one GPU server serves a department's workstations.

Images travel inline as base64 PNG data URLs. The API key is read from an environment
variable and never printed. Connection failures, timeouts and 5xx answers are retried with
backoff; 4xx answers, malformed responses and a model that never writes tool calls stop the
run with a message that says what to check.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
import urllib.error
import urllib.request

from ...errors import AgentError
from ..protocol import MAX_NEW_TOKENS, tool_call_text
from .agent_model import DEFAULT_MODEL
from .base import Observation, Policy

RETRIES = 2
BACKOFF_SECONDS = 1.0
ANSWERS_WITHOUT_TOOL_CALLS_ALLOWED = 2


class EndpointPolicy(Policy):
    name = "endpoint"

    def __init__(
        self,
        url: str,
        model: str | None = None,
        api_key_env: str = "MEDSAM_AGENT_API_KEY",
        timeout: float = 120.0,
        retries: int = RETRIES,
        api_key: str | None = None,
    ):
        """`api_key` (the Slicer module passes the one kept in its settings) takes precedence
        over the environment variable `api_key_env` (the command line's way)."""
        self.url = _completions_url(url)
        self.model = model or DEFAULT_MODEL
        self.api_key_env = api_key_env
        self._api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self._answers_without_calls = 0

    def __repr__(self) -> str:  # never show the key
        return f"EndpointPolicy(url={self.url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def describe(self) -> str:
        return f"endpoint {self.url} ({self.model})"

    def begin(self, description: str, truth=None) -> None:
        self._answers_without_calls = 0

    def respond(self, observation: Observation) -> str:
        payload = {
            "model": self.model,
            "messages": [_openai_message(message) for message in observation.messages],
            "max_tokens": MAX_NEW_TOKENS,
            "temperature": 0.0,
        }
        answer = self._post(payload)
        text = _answer_text(answer, self.url)
        if "tool_call" in text:
            self._answers_without_calls = 0
        else:
            self._answers_without_calls += 1
            if self._answers_without_calls >= ANSWERS_WITHOUT_TOOL_CALLS_ALLOWED:
                raise AgentError(
                    f"the model {self.model!r} at {self.url} answered {self._answers_without_calls} times without a tool call "
                    f"(last answer: {text[:80]!r}); check that the server runs MedSAM-Agent, or the Qwen tool-call parser"
                )
        return text

    def _post(self, payload: dict) -> dict:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        key = self._api_key or os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        failure = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
            except urllib.error.HTTPError as error:
                detail = _error_detail(error)
                if error.code < 500:
                    where = "the module's settings" if self._api_key else f"${self.api_key_env}"
                    hint = f"; check the API key in {where}" if error.code in (401, 403) else ""
                    if error.code == 404:
                        hint = "; check the URL and the model name"
                    raise AgentError(f"agent endpoint {self.url} refused the request: HTTP {error.code} {detail}{hint}") from None
                failure = f"HTTP {error.code} {detail}"
                continue
            except (urllib.error.URLError, ConnectionError, OSError) as error:
                reason = getattr(error, "reason", error)
                failure = "timed out" if "timed out" in str(reason) else f"unreachable ({reason})"
                continue
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                raise AgentError(f"agent endpoint {self.url} answered with something that is not JSON: {raw[:80]!r}") from None
        raise AgentError(f"agent endpoint {self.url} failed after {self.retries + 1} attempts: {failure}")


def _completions_url(url: str) -> str:
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if not url.endswith("/v1"):
        url += "/v1"
    return url + "/chat/completions"


def _openai_message(message: dict) -> dict:
    content = message["content"]
    if isinstance(content, str):
        return {"role": message["role"], "content": content}
    parts = []
    for part in content:
        if part["type"] == "image":
            buffer = io.BytesIO()
            part["image"].save(buffer, format="PNG")
            url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            parts.append({"type": "text", "text": part["text"]})
    return {"role": message["role"], "content": parts}


def _answer_text(answer: dict, url: str) -> str:
    """The assistant's text; tool calls parsed out by the server are written back in the
    model's own format."""
    try:
        message = answer["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise AgentError(f"agent endpoint {url} answered without choices[0].message: {json.dumps(answer)[:120]}") from None
    calls = message.get("tool_calls") or []
    if calls:
        return "\n".join(_call_text(call) for call in calls)
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def _call_text(call: dict) -> str:
    """A server-parsed tool call back in the model's format; arguments the server could not
    parse are kept raw, for the parser to repair or reject."""
    function = call.get("function") or {}
    arguments = function.get("arguments", "{}")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return f'<tool_call>\n{{"name": {json.dumps(function.get("name"))}, "arguments": {arguments}}}\n</tool_call>'
    return tool_call_text(function.get("name"), arguments)


def _error_detail(error: urllib.error.HTTPError) -> str:
    try:
        body = error.read().decode(errors="replace").strip()
    except Exception:  # the body is only for the message
        body = ""
    return (error.reason or "") + (f": {body[:160]}" if body else "")
