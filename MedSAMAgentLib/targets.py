"""What the user asked to segment, as a list of targets: "liver; spleen", one per line, or
several values (the command line's repeated --target). Each target is one engine run and
one segment, named after it."""

from __future__ import annotations

import re

from .errors import PromptError


def parse_targets(values) -> list[str]:
    """The targets, in the order given; each value may list several, separated by ';' or
    line breaks. Refuses a target named twice (two segments with one name)."""
    if isinstance(values, str):
        values = [values]
    targets = [part.strip() for value in values or [] for part in re.split(r"[;\n]", value) if part.strip()]
    seen = set()
    for target in targets:
        if target.lower() in seen:
            raise PromptError(f"target {target!r} is given twice")
        seen.add(target.lower())
    return targets


def folder_name(target: str) -> str:
    """A file-system name for a target's records: 'right kidney' -> 'right_kidney'."""
    return re.sub(r"[^A-Za-z0-9]+", "_", target).strip("_") or "target"
