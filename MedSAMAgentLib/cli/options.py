"""Options shared by several commands, and the engine they select."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..agent.policies import POLICIES
from ..engine.interface import Engine
from ..errors import MedSAMAgentError, PromptError
from ..remote import SERVER_KEY_ENV
from ..segmenters import (
    DEFAULT_MEDSAM2_TURN_SIZE,
    DEFAULT_RUNTIME,
    DEFAULT_SEGMENTER,
    DEVICE_CHOICES,
    MEDSAM2_TURN_SIZES,
    RUNTIME_CHOICES,
    SEGMENTERS,
    check_device_name,
)

DEFAULT_POLICY = "qwen"


def info(message: str) -> None:
    print(message, file=sys.stderr)


def _device(text: str) -> str:
    try:
        return check_device_name(text)
    except MedSAMAgentError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=_device, default="auto", metavar="|".join(DEVICE_CHOICES),
                        help="where the models run (default: auto, a CUDA GPU when there is one)")
    parser.add_argument("--runtime", choices=RUNTIME_CHOICES, default=DEFAULT_RUNTIME,
                        help="what runs the image encoders on the CPU: auto = OpenVINO in bf16 where the CPU computes "
                             "bf16 natively, else f32; torch = plain PyTorch f32, the reference")


def add_listening_options(parser: argparse.ArgumentParser, default_port: int) -> None:
    """Where a service listens, and the keys it asks for before it may listen off this computer."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--api-keys", type=Path, metavar="FILE", help="accepted keys (made with add-key); needed off this computer")


def add_models_folder_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="models_from", type=Path, metavar="DIR", action="append",
                        help="a folder of weights copied from another machine (as `models fetch --to DIR` wrote it); "
                             "looked in before the hub cache (also: $MEDSAM_AGENT_MODELS)")


def use_models_folders(args: argparse.Namespace) -> None:
    """Put the `--from` folders first in the weights' search path, for this process."""
    from ..errors import CheckpointError
    from ..weights import MODELS_FOLDER_ENV

    folders = [Path(folder).expanduser() for folder in getattr(args, "models_from", None) or []]
    for folder in folders:
        if not folder.is_dir():
            raise CheckpointError(f"--from {folder}: no such folder")
    if folders:
        earlier = [part for part in os.environ.get(MODELS_FOLDER_ENV, "").split(os.pathsep) if part]
        os.environ[MODELS_FOLDER_ENV] = os.pathsep.join([*map(str, folders), *earlier])


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--segmenter", choices=SEGMENTERS, help=f"default: {DEFAULT_SEGMENTER} (with --server: the server's)")
    parser.add_argument("--checkpoint", help="segmenter weights: a local file, or for medsam2 a Hugging Face reference "
                                             "such as wanglab/MedSAM2 or wanglab/MedSAM2/MedSAM2_CTLesion.pt")
    add_models_folder_option(parser)
    add_device_option(parser)


def add_agent_options(group) -> None:
    group.add_argument("--policy", choices=POLICIES, help=f"who places prompts (default: {DEFAULT_POLICY})")
    group.add_argument("--agent-model", help="local model folder or Hugging Face id (qwen policy) or served model name (endpoint)")
    group.add_argument("--endpoint", help="URL of an OpenAI-compatible server running MedSAM-Agent")
    group.add_argument("--api-key-env", default="MEDSAM_AGENT_API_KEY", help="environment variable holding the endpoint's API key")
    group.add_argument("--endpoint-timeout", type=float, default=120.0, metavar="SECONDS",
                       help="how long one answer of the endpoint may take (default 120); a turn is tried 3 times")
    group.add_argument("--agent-turns-px", type=int, choices=MEDSAM2_TURN_SIZES, default=DEFAULT_MEDSAM2_TURN_SIZE,
                       help="with --segmenter medsam2, the image size of the agent's turns: 1024 (default) = sam2's stock "
                            "configuration, the masks the agent was trained on; 512 = MedSAM2's own, as propagation")


def policy_spec(args, required: bool = True):
    """The agent's policy from the options, or None when no agent option was given and
    none is `required`."""
    from ..engine.local import PolicySpec

    if not required and not (args.policy or args.agent_model or args.endpoint):
        return None
    return PolicySpec(name=args.policy or DEFAULT_POLICY, model=args.agent_model, endpoint=args.endpoint, api_key_env=args.api_key_env,
                      timeout=args.endpoint_timeout)


def local_engine(args, with_agent: bool) -> Engine:
    from ..engine.local import LocalEngine

    segmenter = args.segmenter or DEFAULT_SEGMENTER
    return LocalEngine(
        default_segmenter=segmenter,
        checkpoints={segmenter: args.checkpoint} if args.checkpoint else {},
        device=args.device,
        policy=policy_spec(args) if with_agent else None,
        runtime=args.runtime,
        medsam2_turn_size=args.agent_turns_px,
    )


def engine_from_args(args, with_agent: bool) -> Engine:
    """The server's engine with `--server URL`, else this computer's."""
    if not getattr(args, "server", None):
        return local_engine(args, with_agent)
    refused = [option for option, value in (("--checkpoint", args.checkpoint), ("--policy", args.policy),
                                            ("--agent-model", args.agent_model), ("--endpoint", args.endpoint)) if value]
    if args.agent_turns_px != DEFAULT_MEDSAM2_TURN_SIZE:
        refused.append("--agent-turns-px")
    if refused:
        raise PromptError(f"{', '.join(refused)} choose models on this computer; with --server the server's models are used")
    hardware = [option for option, value in (("--device", args.device), ("--runtime", args.runtime)) if value != "auto"]
    if hardware:
        info(f"note: {' and '.join(hardware)} choose this computer's hardware; with --server they are ignored (the server chose its own)")
    from ..remote import RemoteEngine

    return RemoteEngine(args.server, api_key=os.environ.get(SERVER_KEY_ENV), key_source=f"${SERVER_KEY_ENV}")
