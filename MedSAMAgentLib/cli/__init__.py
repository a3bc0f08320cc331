"""The `medsam-agent` command: segment a volume (here or on a server), segment a cohort
(`batch`: on local workers, the server or a Ray cluster), evaluate, report
what the agent did, run the demo, serve the models to a department, manage the server's
keys and store, list and fetch the weights (`models`), and diagnose the machine (`doctor`).

Every user error ends with one line on stderr starting with 'error:' and exit status 2;
nothing is written unless the whole run succeeds. With several targets, a target that
fails gets its own 'error:' line, the others are written, and the status is 3
(`EXIT_SOME_TARGETS_FAILED`). Importing this package loads no model
code, so that a client-only install (no torch) runs `segment --server`.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import MedSAMAgentError
from . import batch, demo, evaluate, models, report, segment, serving, web
from .options import use_models_folders
from .targets import EXIT_SOME_TARGETS_FAILED

EXIT_USER_ERROR = 2
__all__ = ["EXIT_SOME_TARGETS_FAILED", "EXIT_USER_ERROR", "build_parser", "main"]
RUNNERS = {
    "segment": segment.run,
    "batch": batch.run,
    "eval": evaluate.run,
    "report": report.run,
    "demo": demo.run,
    "web": web.run,
    **serving.RUNNERS,
    **models.RUNNERS,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medsam-agent",
        description="Promptable and text-driven 3D segmentation of CT and MRI volumes with MedSAM-Agent, LiteMedSAM and MedSAM2.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", required=True)
    segment.add_parser(commands)
    batch.add_parser(commands)
    evaluate.add_parser(commands)
    report.add_parser(commands)
    demo.add_parser(commands)
    web.add_parser(commands)
    serving.add_parsers(commands)
    models.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    try:
        use_models_folders(args)
        return RUNNERS[args.command](args)
    except MedSAMAgentError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130
