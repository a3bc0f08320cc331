"""Reading the model's answer into one action, without ever raising.

The model should answer with exactly one `<tool_call>{"name": ..., "arguments": ...}</tool_call>`.
Real answers drift: text around the call, a missing closing tag, unquoted keys, single
quotes, trailing commas, floats, coordinates a little past 999, a box given max-first,
legacy tool names. Each such answer is repaired when its meaning is unambiguous, and the
repairs are listed; anything else is an invalid turn with the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .protocol import MAX_COORDINATE

# Coordinates this far past the grid are read as the edge; further out they are invalid.
COORDINATE_SLACK = 10
_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_LEGACY_POINTS = {"add_positive_point": "positive", "add_negative_point": "negative"}


@dataclass
class ParsedAction:
    """One turn's action. `kind` is 'box', 'point', 'stop' or 'invalid'."""

    kind: str
    box: tuple[int, int, int, int] | None = None
    point: tuple[int, int] | None = None
    positive: bool | None = None
    repairs: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.kind != "invalid"

    def as_dict(self) -> dict:
        data = {"kind": self.kind}
        if self.box is not None:
            data["bbox_2d"] = list(self.box)
        if self.point is not None:
            data["point_2d"] = list(self.point)
            data["point_type"] = "positive" if self.positive else "negative"
        if self.repairs:
            data["repairs"] = list(self.repairs)
        if self.error:
            data["error"] = self.error
        return data


def parse_action(text: str) -> ParsedAction:
    repairs: list[str] = []
    bodies = [body.strip() for body in _CALL.findall(text or "")]
    if not bodies:
        bare = _bare_json(text or "")
        if bare is None:
            return _invalid("no <tool_call> in the answer", repairs)
        bodies = [bare]
        repairs.append("tool call without <tool_call> tags")
    elif "</tool_call>" not in text:
        repairs.append("missing </tool_call>")
    calls = []
    for body in bodies:
        call, fixes = _load_json(body)
        if call is None:
            return _invalid(f"tool call is not valid JSON: {body[:80]!r}", repairs)
        calls.append(call)
        repairs.extend(fixes)
    if any(call != calls[0] for call in calls[1:]):
        return _invalid(f"{len(calls)} different tool calls in one answer", repairs)
    if len(calls) > 1:
        repairs.append(f"{len(calls)} identical tool calls read as one")
    if _CALL.sub("", text).strip() and bodies and "<tool_call>" in text:
        repairs.append("text around the tool call ignored")
    return _action(calls[0], repairs)


def _action(call: dict, repairs: list[str]) -> ParsedAction:
    if not isinstance(call, dict):
        return _invalid("tool call is not a JSON object", repairs)
    name = call.get("name")
    arguments = call.get("arguments", {})
    if isinstance(arguments, str):
        loaded, fixes = _load_json(arguments)
        if not isinstance(loaded, dict):
            return _invalid("arguments are not a JSON object", repairs)
        arguments = loaded
        repairs.append("arguments given as a JSON string")
        repairs.extend(fixes)
    if not isinstance(arguments, dict):
        return _invalid("arguments are not a JSON object", repairs)
    if name == "stop_action":
        return ParsedAction("stop", repairs=repairs)
    if name == "add_bbox":
        values = _coordinates(arguments.get("bbox_2d"), 4, "bbox_2d", repairs)
        if isinstance(values, str):
            return _invalid(values, repairs)
        x0, y0, x1, y1 = values
        if x0 > x1 or y0 > y1:
            repairs.append("box corners swapped into min-max order")
            x0, x1 = min(x0, x1), max(x0, x1)
            y0, y1 = min(y0, y1), max(y0, y1)
        if x0 == x1 or y0 == y1:
            return _invalid(f"bbox_2d {values} has no area", repairs)
        return ParsedAction("box", box=(x0, y0, x1, y1), repairs=repairs)
    if name == "add_point" or name in _LEGACY_POINTS:
        if name in _LEGACY_POINTS:
            repairs.append(f"legacy tool {name} read as add_point")
            point_type = _LEGACY_POINTS[name]
            raw = arguments.get("point_2d", [arguments.get("x"), arguments.get("y")])
        else:
            point_type = str(arguments.get("point_type", "")).strip().lower()
            raw = arguments.get("point_2d")
        if point_type in ("pos", "+", "include"):
            repairs.append(f"point_type {point_type!r} read as positive")
            point_type = "positive"
        elif point_type in ("neg", "-", "exclude"):
            repairs.append(f"point_type {point_type!r} read as negative")
            point_type = "negative"
        if point_type not in ("positive", "negative"):
            return _invalid(f"point_type must be positive or negative, got {arguments.get('point_type')!r}", repairs)
        values = _coordinates(raw, 2, "point_2d", repairs)
        if isinstance(values, str):
            return _invalid(values, repairs)
        return ParsedAction("point", point=tuple(values), positive=point_type == "positive", repairs=repairs)
    return _invalid(f"unknown tool {name!r}", repairs)


def _coordinates(raw, count: int, name: str, repairs: list[str]) -> list[int] | str:
    if isinstance(raw, (list, tuple)) and len(raw) == 1 and isinstance(raw[0], (list, tuple)):
        raw = raw[0]
        repairs.append(f"{name} unwrapped from a nested list")
    if not isinstance(raw, (list, tuple)) or len(raw) != count:
        return f"{name} must be a list of {count} numbers, got {raw!r}"
    values = []
    for value in raw:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return f"{name} holds a non-number {value!r}"
            repairs.append(f"{name} number given as a string")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name} holds a non-number {value!r}"
        if value != int(value):
            repairs.append(f"{name} rounded to integers")
        values.append(int(round(value)))
    if any(v < -COORDINATE_SLACK or v > MAX_COORDINATE + COORDINATE_SLACK for v in values):
        return f"{name} {values} is off the 0-{MAX_COORDINATE} grid"
    clipped = [min(max(v, 0), MAX_COORDINATE) for v in values]
    if clipped != values:
        repairs.append(f"{name} clipped to 0-{MAX_COORDINATE}")
    return clipped


def _load_json(body: str) -> tuple[object | None, list[str]]:
    """Strict JSON first, then the usual slips, each named."""
    try:
        return json.loads(body), []
    except json.JSONDecodeError:
        pass
    fixes = []
    text = body.strip()
    text = re.sub(r"^```(?:json)?|```$", "", text).strip()
    if "'" in text and '"' not in text:
        text = text.replace("'", '"')
        fixes.append("single quotes read as double quotes")
    candidate = re.sub(r"([{,]\s*)([A-Za-z_]\w*)(\s*:)", r'\1"\2"\3', text)  # unquoted keys
    candidate = re.sub(r'([{,]\s*)([A-Za-z_]\w*)("\s*:)', r'\1"\2\3', candidate)  # key missing its opening quote
    if candidate != text:
        fixes.append("unquoted keys quoted")
        text = candidate
    candidate = re.sub(r",\s*([}\]])", r"\1", text)
    if candidate != text:
        fixes.append("trailing comma removed")
        text = candidate
    depth = text.count("{") - text.count("}")
    if 0 < depth <= 2:
        text += "}" * depth
        fixes.append("missing closing brace added")
    try:
        return json.loads(text), fixes
    except json.JSONDecodeError:
        return None, fixes


def _bare_json(text: str) -> str | None:
    """A tool call written without tags: the first {...} that names a tool."""
    match = re.search(r"\{.*\"name\"\s*:.*\}", text, re.DOTALL)
    return match.group(0) if match else None


def _invalid(reason: str, repairs: list[str]) -> ParsedAction:
    return ParsedAction("invalid", repairs=repairs, error=reason)
