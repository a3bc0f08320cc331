"""The department server's commands: `serve`, `add-key` and `purge-store`."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_agent_options, add_device_option, add_listening_options, add_models_folder_option, info, policy_spec

DEFAULT_PORT = 8765
DEFAULT_STORE = Path("~/.cache/medsam-agent/store")
MB = 1 << 20


def add_parsers(commands) -> None:
    from ..segmenters import DEFAULT_SEGMENTER, SEGMENTERS

    serve = commands.add_parser("serve", help="serve the models to thin clients (3D Slicer, segment --server)")
    add_listening_options(serve, DEFAULT_PORT)
    serve.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve HTTPS with this certificate (PEM), or put a TLS proxy in front")
    serve.add_argument("--tls-key", type=Path, metavar="FILE", help="the certificate's private key (PEM)")
    serve.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"folder for uploaded volumes (default {DEFAULT_STORE})")
    serve.add_argument("--store-max-gb", type=float, default=50.0, help="store size cap; least recently used volumes go first")
    serve.add_argument("--max-volume-mb", type=int, default=2048, help="largest volume accepted, uncompressed")
    serve.add_argument("--part-mb", type=int, default=8, help="largest upload part accepted")
    serve.add_argument("--queue-size", type=int, default=16, help="jobs that may wait; beyond it clients are told to retry")
    serve.add_argument("--segmenter", choices=SEGMENTERS, default=DEFAULT_SEGMENTER, help="the segmenter for requests that name none")
    serve.add_argument("--checkpoint", help="weights for --segmenter (the other segmenter uses its default weights)")
    add_models_folder_option(serve)
    add_device_option(serve)
    agent = serve.add_argument_group("agent", "who places prompts for a target (default: the qwen policy in this process)")
    add_agent_options(agent)
    agent.add_argument("--no-agent", action="store_true", help="serve prompts only (no agent model loaded)")

    add_key = commands.add_parser("add-key", help="make a new API key for the server (prints it once)")
    add_key.add_argument("key_file", type=Path, help="the server's --api-keys file (created if missing)")
    add_key.add_argument("name", help="who the key is for (a user or a workstation)")

    purge = commands.add_parser("purge-store", help="delete every volume a server has stored")
    purge.add_argument("store", type=Path, nargs="?", default=DEFAULT_STORE, help=f"the server's --store folder (default {DEFAULT_STORE})")


def run_serve(args: argparse.Namespace) -> int:
    from ..server.serve import ServeOptions, serve

    options = ServeOptions(
        host=args.host,
        port=args.port,
        api_keys=args.api_keys,
        store=args.store.expanduser(),
        store_max_bytes=int(args.store_max_gb * 1024 * MB),
        max_volume_bytes=args.max_volume_mb * MB,
        part_bytes=args.part_mb * MB,
        queue_size=args.queue_size,
        device=args.device,
        runtime=args.runtime,
        medsam2_turn_size=args.agent_turns_px,
        segmenter=args.segmenter,
        checkpoint=args.checkpoint,
        policy=None if args.no_agent else policy_spec(args),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
    serve(options, log=info)
    return 0


def run_add_key(args: argparse.Namespace) -> int:
    from ..server.keys import add_key

    key = add_key(args.key_file, args.name)
    info(f"added a key for {args.name!r} to {args.key_file}; give it to them now, it is stored nowhere:")
    print(key)
    return 0


def run_purge_store(args: argparse.Namespace) -> int:
    from ..server.store import purge_store

    files, size = purge_store(args.store.expanduser())
    info(f"removed {files} files ({size / MB:.1f} MB) from {args.store}")
    return 0


RUNNERS = {"serve": run_serve, "add-key": run_add_key, "purge-store": run_purge_store}
