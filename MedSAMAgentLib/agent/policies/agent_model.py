"""Where the agent's model is: a local folder, or a hub model found on this machine first.
Imports neither torch nor transformers, so that a run is refused before either loads."""

from __future__ import annotations

from pathlib import Path

from ...errors import AgentError
from ...weights import spec_named

DEFAULT_MODEL = spec_named("agent").repo_id


def model_folder(reference: str | None, download: bool = True) -> Path:
    """The agent model's local folder: `reference` itself when it is a folder, else the hub
    model it names (default: the released agent), found on this machine first and (with
    `download`) fetched from the hub otherwise (`weights`)."""
    from ...weights import WeightsMissing, hub_snapshot

    reference = reference or DEFAULT_MODEL
    path = Path(reference).expanduser()
    if path.is_dir():
        return path
    if reference.startswith(("/", ".", "~")) or reference.count("/") != 1:
        raise AgentError(f"agent model not found: {reference} (give a local model folder or a Hugging Face id such as {DEFAULT_MODEL})")
    try:
        return hub_snapshot(reference, instead="pass a local model folder with --agent-model", download=download)
    except WeightsMissing as missing:
        raise AgentError(str(missing)) from None
