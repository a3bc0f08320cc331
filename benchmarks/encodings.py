"""Image encodings kept on disk between benchmark runs: every slice is encoded once per
runtime, so that comparing propagation designs costs only the mask decoder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from MedSAMAgentLib.segmenters.base import EncodingCache


class StoredEncodings(EncodingCache):
    """An `EncodingCache` that also keeps every encoding in `folder`, under the same key."""

    def __init__(self, folder: Path, size: int = 64):
        super().__init__(size)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def get(self, image, encode: Callable[[], object], *framing: float) -> object:
        path = self.folder / f"{self.key(image, *framing).hex()}.pt"

        def stored_or_encoded():
            if path.is_file():
                return torch.load(path, weights_only=True)
            encoding = encode()
            torch.save(encoding.contiguous(), path)
            return encoding

        return super().get(image, stored_or_encoded, *framing)


def store_encodings(segmenter, folder: Path) -> None:
    """Make `segmenter` (a LiteMedSAM) keep its encodings under `folder`, one subfolder per
    runtime and precision (bf16 and f32 encodings differ)."""
    runtime = segmenter.runtime
    segmenter._embeddings = StoredEncodings(Path(folder) / f"{runtime.name}-{runtime.precision}")
