"""Loading weights: strict, `weights_only`, with messages that say what is wrong."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..errors import CheckpointError


def load_state_dict(path: Path) -> dict:
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt files
        raise CheckpointError(f"cannot load checkpoint {path}: {error.__class__.__name__}: {str(error).splitlines()[0]}") from None
    for key in ("model", "state_dict"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} does not hold a state dict")
    return checkpoint


def load_weights(model: torch.nn.Module, path: Path, what: str) -> None:
    """Load `path` into `model`; every key must match in name and shape."""
    state_dict = load_state_dict(path)
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # shape mismatches are raised even when not strict
        raise CheckpointError(f"{path} is not a {what} checkpoint: {str(error).splitlines()[-1].strip()}") from None
    if result.missing_keys or result.unexpected_keys:
        detail = []
        if result.missing_keys:
            detail.append(f"{len(result.missing_keys)} missing (e.g. {result.missing_keys[0]})")
        if result.unexpected_keys:
            detail.append(f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[0]})")
        raise CheckpointError(f"{path} is not a {what} checkpoint: keys do not match, " + ", ".join(detail))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
