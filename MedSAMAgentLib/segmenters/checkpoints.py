"""Loading weights: strict, `weights_only`, with messages that say what a wrong file is and
what was expected (a file that is not a checkpoint at all is named by its first bytes; a
checkpoint of another model by the layout of its weights)."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path

import torch

from ..errors import CheckpointError


def load_state_dict(path: Path, what: str = "model") -> dict:
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # torch raises several types for files that are not checkpoints
        raise CheckpointError(f"{path} is not a PyTorch checkpoint: it is {file_kind(path)}; expected {what} weights saved by torch.save") from None
    for key in ("model", "state_dict"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        kind = f"a {type(checkpoint).__name__}" if not isinstance(checkpoint, dict) else f"a dict of {', '.join(sorted(map(str, checkpoint))[:4])}"
        raise CheckpointError(f"{path} holds {kind}, not a state dict of weights; expected {what} weights")
    return checkpoint


def load_weights(model: torch.nn.Module, path: Path, what: str) -> None:
    """Load `path` into `model`; every key must match in name and shape."""
    state_dict = load_state_dict(path, what)
    found, needed = model_kind(state_dict), model_kind(model.state_dict())
    if found is not None and found != needed:
        raise CheckpointError(f"{path} holds {found} weights; {what} needs {needed} weights")
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


def model_kind(state_dict: dict) -> str | None:
    """Which family of segmentation model a state dict's key layout belongs to, with its
    size where the layout tells it; None when it is none of them."""
    keys = list(state_dict)

    def blocks(prefix: str) -> int:
        numbers = {int(m.group(1)) for k in keys if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
        return max(numbers) + 1 if numbers else 0

    if any(k.startswith("memory_attention.") for k in keys) or any(k.startswith("image_encoder.trunk.") for k in keys):
        count = blocks("image_encoder.trunk.blocks.")
        size = {12: "tiny", 16: "small", 24: "base+", 48: "large"}.get(count, f"{count} blocks")
        return f"SAM 2 / MedSAM2 (Hiera-{size})"
    if any(k.startswith("image_encoder.patch_embed.seq.") for k in keys):
        return "LiteMedSAM / MobileSAM (TinyViT encoder)"
    if any(k.startswith("image_encoder.blocks.") for k in keys):
        count = blocks("image_encoder.blocks.")
        size = {12: "ViT-B", 24: "ViT-L", 32: "ViT-H"}.get(count, f"{count} blocks")
        return f"SAM / MedSAM ({size} encoder)"
    if any(k.startswith(("model.layers.", "lm_head.", "model.language_model.")) for k in keys):
        return "language model"
    return None


def file_kind(path: Path) -> str:
    """What a file that torch cannot load is, from its first bytes."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as error:
        return f"unreadable ({error.strerror})"
    if size == 0:
        return "an empty file"
    if len(head) >= 348 and head[344:348] in (b"n+1\0", b"ni1\0"):
        return "a NIfTI image"
    if head[128:132] == b"DICM":
        return "a DICOM file"
    signatures = {b"PK\x03\x04": "a ZIP archive that is not a PyTorch checkpoint (damaged, or another format)",
                  b"\x89HDF": "an HDF5 file (Keras or TensorFlow weights?)", b"GGUF": "a GGUF model file (llama.cpp)",
                  b"\x1f\x8b": "a gzip-compressed file", b"\x80": "a Python pickle that torch cannot load safely (damaged, or not weights)",
                  b"NRRD": "a NRRD image", b"\x08\x00": "possibly an ONNX model"}
    for magic, kind in signatures.items():
        if head.startswith(magic):
            return kind
    if _is_safetensors(head, size):
        return "a safetensors file (load it with the safetensors package and save its state dict with torch.save)"
    text = head[:60].decode("utf-8", errors="replace")
    if text.isprintable() or all(ch.isprintable() or ch.isspace() for ch in text):
        return f"a text file (it starts with {text.strip()[:40]!r})"
    return f"an unrecognised binary file of {size} bytes"


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    if not 2 <= length <= size - 8 or head[8:9] != b"{":
        return False
    try:
        json.loads(head[8 : 8 + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return length > len(head) - 8  # the header continues past what was read
    return True


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
