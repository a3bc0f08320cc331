"""`medsam-agent report`: one self-contained HTML page from agent records and evaluations."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import OutputError
from .options import info


def add_parser(commands) -> argparse.ArgumentParser:
    report = commands.add_parser("report", help="an HTML page of what the agent did, from records and evaluations")
    report.add_argument("folders", type=Path, nargs="+", metavar="DIR",
                        help="an evaluation's output folder (eval -o) or an agent record (segment --save-trajectory)")
    report.add_argument("-o", "--output", type=Path, help="the page to write (default: report.html in the first DIR)")
    report.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    return report


def run(args: argparse.Namespace) -> int:
    from ..report import REPORT_FILE

    output = args.output or args.folders[0] / REPORT_FILE
    info(f"wrote {write_checked_report(args.folders, output, args.overwrite)}")
    return 0


def write_checked_report(folders: list[Path], output: Path, overwrite: bool) -> Path:
    """The report, refused before any work when `output` cannot be written."""
    from ..report import write_report

    if output.suffix.lower() not in (".html", ".htm"):
        raise OutputError(f"{output}: the report is an HTML page; name it .html")
    if output.exists() and not overwrite:
        raise OutputError(f"{output} exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise OutputError(f"folder {output.parent} does not exist")
    return write_report(folders, output)
