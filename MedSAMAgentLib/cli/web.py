"""`medsam-agent web`: the browser workstation (see `MedSAMAgentLib.web`). trame, VTK and
the models are imported only when it starts."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import MedSAMAgentError
from ..segmenters import DEFAULT_SEGMENTER, SEGMENTERS
from .options import DEFAULT_POLICY, SERVER_KEY_ENV, add_device_option, add_listening_options, info

DEFAULT_PORT = 8780
DEFAULT_OUTPUT = Path("medsam-agent-web")
WEB_POLICIES = ("qwen", "endpoint")  # the clinician policy needs the truth, which a workstation has not


def add_parser(commands) -> None:
    web = commands.add_parser("web", help="the workstation in a web browser: views, prompts, segment, edit, save")
    add_listening_options(web, DEFAULT_PORT)
    web.add_argument("--data", type=Path, metavar="DIR", help="a folder whose volumes the page may open (nothing outside it)")
    web.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, metavar="DIR",
                     help=f"where saved segmentations go, one folder per browser session (default {DEFAULT_OUTPUT})")
    web.add_argument("--server", metavar="URL", help=f"run the models on this MedSAM-Agent server (its key in ${SERVER_KEY_ENV})")
    web.add_argument("--segmenter", default=DEFAULT_SEGMENTER, choices=SEGMENTERS, help="the segmenter for boxes")
    agent = web.add_argument_group("the agent, for typed targets (on this computer; with --server the server's)")
    agent.add_argument("--policy", choices=WEB_POLICIES, default=DEFAULT_POLICY, help=f"who places the prompts (default: {DEFAULT_POLICY})")
    agent.add_argument("--agent-model", help="local model folder or Hugging Face id (qwen) or served model name (endpoint)")
    agent.add_argument("--endpoint", metavar="URL",
                       help="an OpenAI-compatible server running MedSAM-Agent (with --policy endpoint; its key in $MEDSAM_AGENT_API_KEY)")
    web.add_argument("--idle-exit", type=int, default=30, metavar="SECONDS",
                     help="a closed page's session (its scene and memory) ends after this long")
    add_device_option(web)


def run(args: argparse.Namespace) -> int:
    import logging

    from aiohttp import web

    from ..server.addresses import is_loopback
    from ..server.keys import KeyFile
    from ..web.gateway import create_gateway
    from ..web.sessions import Sessions, SessionSettings

    if args.api_keys is None and not is_loopback(args.host):
        raise MedSAMAgentError(
            f"refusing to listen on {args.host} without keys: give --api-keys FILE (make keys with medsam-agent add-key)"
        )
    if args.policy == "endpoint" and not args.endpoint and not args.server:
        raise MedSAMAgentError("--policy endpoint needs --endpoint URL (an OpenAI-compatible server)")
    if args.data is not None and not args.data.is_dir():
        raise MedSAMAgentError(f"--data {args.data}: not a folder")
    keys = KeyFile(args.api_keys) if args.api_keys else None
    settings = SessionSettings(output=args.output.expanduser().resolve(), data=args.data, segmenter=args.segmenter,
                               device=args.device, runtime=args.runtime, policy=args.policy, agent_model=args.agent_model, endpoint=args.endpoint,
                               server_url=args.server, idle_exit=args.idle_exit)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    info(f"MedSAM-Agent workstation on http://{args.host}:{args.port}/ ({'keys asked' if keys else 'this computer only'}); "
         f"saved files go to {settings.output}")
    web.run_app(create_gateway(Sessions(settings), keys), host=args.host, port=args.port, access_log=None, print=None)
    return 0
