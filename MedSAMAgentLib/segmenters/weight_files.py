"""Which weights file a segmenter will load, found without loading torch or any model, so
that a run without its weights is refused before any work: LiteMedSAM's from its package
(or `--checkpoint`), MedSAM2's from a local path or a hub reference (`weights.locate`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError, MedSAMAgentError
from ..weights import hub_file, spec_named
from ..weights.inventory import status_of

MEDSAM2 = spec_named("medsam2")
HUB_REPO, HUB_FILE = MEDSAM2.repo_id, MEDSAM2.filename


def segmenter_weights(name: str, checkpoint: str | Path | None, download: bool = True) -> Path:
    """The file segmenter `name` will load; raises CheckpointError when it is not here and
    (for a hub reference, with `download`) cannot be fetched now."""
    if name == "litemedsam":
        return litemedsam_weights(checkpoint)
    if name == "medsam2":
        return resolve_checkpoint(checkpoint, download)
    raise MedSAMAgentError(f"unknown segmenter {name!r}")


def litemedsam_weights(checkpoint: str | Path | None) -> Path:
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise CheckpointError(f"LiteMedSAM checkpoint not found: {path}")
        return path
    status = status_of(spec_named("litemedsam"))
    if not status.present:
        raise CheckpointError(f"LiteMedSAM weights: {status.problem}")
    return status.path


def resolve_checkpoint(spec: str | Path | None, download: bool = True) -> Path:
    """A local file, or a hub reference: 'wanglab/MedSAM2' (the default file) or
    'wanglab/MedSAM2/MedSAM2_CTLesion.pt', found on this machine first."""
    if spec is None:
        return hub_file(HUB_REPO, HUB_FILE, _instead(HUB_FILE), download)
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    reference = text.removeprefix("hf://")
    parts = reference.split("/")
    local_looking = (
        not text.startswith("hf://")
        and (text.startswith(("/", ".", "~")) or len(parts) == 1 or path.parent.is_dir())
    )
    if not local_looking and len(parts) in (2, 3) and all(parts):
        filename = parts[2] if len(parts) == 3 else HUB_FILE
        return hub_file("/".join(parts[:2]), filename, _instead(filename), download)
    raise CheckpointError(f"checkpoint not found: {text} (give a .pt file or a Hugging Face reference such as {HUB_REPO})")


def _instead(filename: str) -> str:
    return f"pass --checkpoint /path/to/{filename}"
