"""`medsam-agent models`: which weights each model needs and whether they are here;
`models fetch NAME... [--to DIR]` downloads them where the hub is reachable, for copying to
a machine where it is not (which then finds them with --from DIR); `doctor`: this machine
and, with --server, the server, on one screen."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .options import SERVER_KEY_ENV, add_models_folder_option, info

MB = 1 << 20


def add_parsers(commands) -> None:
    from ..weights import CATALOG

    models = commands.add_parser("models", help="the weights each model needs, whether they are here, and fetching them")
    add_models_folder_option(models)
    actions = models.add_subparsers(dest="models_action")
    fetch = actions.add_parser("fetch", help="download weights from the hub (or the mirror in HF_ENDPOINT)")
    fetch.add_argument("names", nargs="+", metavar="NAME",
                       help=f"{', '.join(spec.name for spec in CATALOG if spec.repo_id)}, or a hub reference such as "
                            "wanglab/MedSAM2/MedSAM2_CTLesion.pt")
    fetch.add_argument("--to", type=Path, metavar="DIR", help="a folder to copy to another machine (default: this machine's hub cache)")

    doctor = commands.add_parser("doctor", help="why is it slow or failing here: versions, CPU, GPU, runtime, weights, caches, server")
    add_models_folder_option(doctor)
    doctor.add_argument("--server", metavar="URL", help=f"also check this server: answers, API version, key (from ${SERVER_KEY_ENV})")


def run_models(args: argparse.Namespace) -> int:
    if args.models_action == "fetch":
        return _fetch(args.names, args.to)
    from ..weights import model_folders
    from ..weights.inventory import inventory

    for status in inventory():
        spec = status.spec
        print(f"{spec.name}: {spec.title}, for {spec.used_by}")
        print(f"  source  {spec.source}")
        if status.present:
            print(f"  here    {status.path} ({status.size_bytes / MB:.1f} MB)")
        else:
            print(f"  MISSING {status.problem or f'{spec.approximate_size}; fetch it with: medsam-agent models fetch {spec.name}'}")
        if status.sha256:
            print(f"  sha256  {status.sha256}")
        elif status.present and spec.filename is None:
            print("  sha256  per file, as the hub lists them")
    print("looked in: " + ", ".join(str(folder) for folder in model_folders()))
    return 0


def _fetch(names: list[str], to: Path | None) -> int:
    from ..weights.fetch import fetch, hub_reference

    for name in names:
        hub_reference(name)  # refuse an unknown name before downloading anything
    if to is not None:
        Path(to).expanduser().mkdir(parents=True, exist_ok=True)
    for name in names:
        info(f"fetching {name} ...")
        info(f"{name}: {fetch(name, to)}")
    if to is not None:
        info(f"copy {to} to the offline machine and pass --from {to} (or set MEDSAM_AGENT_MODELS)")
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    from ..doctor import diagnose, render

    sections = diagnose(args.server, os.environ.get(SERVER_KEY_ENV), f"${SERVER_KEY_ENV}")
    print(render(sections))
    return 1 if any(finding.problem for section in sections for finding in section.findings) else 0


RUNNERS = {"models": run_models, "doctor": run_doctor}
