"""`models fetch`: download weights on a machine that has the hub (or a hub mirror named by
`HF_ENDPOINT`) into a folder laid out like the hub cache, to copy to one that has not."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError, MedSAMAgentError
from .catalog import CATALOG
from .locate import _reason, hub_state


def hub_reference(name: str) -> tuple[str, str | None]:
    """(repo id, file or None for the whole repo) for a catalogue name or a hub reference
    such as wanglab/MedSAM2/MedSAM2_CTLesion.pt."""
    for spec in CATALOG:
        if spec.name == name:
            if spec.repo_id is None:
                raise MedSAMAgentError(f"{spec.name} ships inside {spec.source}: it is installed with it, nothing to fetch")
            return spec.repo_id, spec.filename
    parts = name.removeprefix("hf://").split("/")
    if len(parts) in (2, 3) and all(parts):
        return "/".join(parts[:2]), parts[2] if len(parts) == 3 else None
    names = ", ".join(spec.name for spec in CATALOG if spec.repo_id)
    raise MedSAMAgentError(f"unknown model {name!r}: give {names}, or a hub reference such as wanglab/MedSAM2/MedSAM2_CTLesion.pt")


def fetch(name: str, to: Path | None = None) -> Path:
    """Download `name` into `to` (default: the hub cache); returns the file or model folder."""
    repo_id, filename = hub_reference(name)
    state = hub_state()
    if not state.usable:
        raise CheckpointError(f"cannot fetch {name}: the hub is {state.description}; run this on a machine with the hub "
                              "(or set HF_ENDPOINT to your organisation's hub mirror)")
    from huggingface_hub import hf_hub_download, snapshot_download

    cache_dir = None if to is None else Path(to).expanduser()
    try:
        if filename is not None:
            return Path(hf_hub_download(repo_id=repo_id, filename=filename, cache_dir=cache_dir))
        return Path(snapshot_download(repo_id=repo_id, cache_dir=cache_dir))
    except Exception as error:  # unknown repo or file, HTTP errors
        raise CheckpointError(f"cannot fetch {name} from {repo_id} ({_reason(error)})") from None
