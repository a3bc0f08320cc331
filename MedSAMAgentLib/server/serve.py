"""Starting the department server: keys, store, models (loaded before the first request,
so that /health answering means ready), the job queue, then uvicorn.

The server uses the weights on this machine and never waits on the hub (`models fetch`
brings them): without its segmenter's weights it exits with one error line; without the
agent's model it starts in seconds without the agent, says so in its log and in /v1/info,
and answers a target with 422 naming the missing model and the fix."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..engine.local import LocalEngine, PolicySpec
from ..errors import MedSAMAgentError
from ..segmenters import DEFAULT_MEDSAM2_TURN_SIZE
from .addresses import is_loopback
from .app import ServerSettings, create_app
from .jobs import JobQueue
from .keys import KeyFile
from .store import VolumeStore

MB = 1 << 20


@dataclass
class ServeOptions:
    host: str
    port: int
    api_keys: Path | None
    store: Path
    store_max_bytes: int
    max_volume_bytes: int
    part_bytes: int
    queue_size: int
    device: str
    runtime: str
    segmenter: str
    checkpoint: str | None
    policy: PolicySpec | None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_json_bytes: int = 64 * MB
    medsam2_turn_size: int = DEFAULT_MEDSAM2_TURN_SIZE


def serve(options: ServeOptions, log=print) -> None:
    keys = KeyFile(options.api_keys) if options.api_keys else None
    if keys is None and not is_loopback(options.host):
        raise MedSAMAgentError(
            f"refusing to serve on {options.host} without keys: give --api-keys FILE (make keys with medsam-agent add-key)"
        )
    if (options.tls_cert is None) != (options.tls_key is None):
        raise MedSAMAgentError("give both --tls-cert and --tls-key, or neither (and a TLS proxy in front)")
    for path in (options.tls_cert, options.tls_key):
        if path is not None and not Path(path).is_file():
            raise MedSAMAgentError(f"TLS file not found: {path}")
    if options.tls_cert is None and not is_loopback(options.host):
        log(f"warning: serving on {options.host} without TLS: keys and volumes cross the network in clear; "
            "give --tls-cert/--tls-key or put a TLS proxy in front (README, Scaling out)")
    if options.policy is not None and options.policy.name == "clinician":
        raise MedSAMAgentError("the simulated clinician needs ground truth and runs on the command line only; serve qwen or endpoint")
    engine = LocalEngine(
        options.segmenter, {options.segmenter: options.checkpoint} if options.checkpoint else {}, options.device, options.policy,
        options.runtime, options.medsam2_turn_size, downloads=False,
    )
    engine.preflight()  # the default segmenter's weights: without them there is nothing to serve
    if options.policy is not None:
        try:
            engine.preflight(uses_agent=True)
        except MedSAMAgentError as missing:
            engine.without_agent(f"this server runs without its agent: {missing}")
            log(f"warning: {engine.agent_unavailable}")
    store = VolumeStore(options.store, options.store_max_bytes, options.max_volume_bytes)
    log(f"loading {options.segmenter} on {options.device}" + (" and the agent" if engine.agent_ready else ""))
    engine.segmenter()
    if engine.agent_ready:
        engine.policy()
    jobs = JobQueue(engine, options.queue_size)
    settings = ServerSettings(keys, options.part_bytes, options.max_volume_bytes, options.max_json_bytes)
    app = create_app(engine, store, jobs, settings)
    access = f"{len(keys.ring.entries)} API keys" if keys else "no keys (this computer only)"
    scheme = "https" if options.tls_cert else "http"
    log(f"serving {engine.describe()} on {scheme}://{options.host}:{options.port} with {access}; store {options.store}")
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    logging.getLogger("uvicorn.access").addFilter(_quiet_progress_polls)
    try:
        uvicorn.run(app, host=options.host, port=options.port, log_level="info", timeout_graceful_shutdown=5,
                    ssl_certfile=options.tls_cert, ssl_keyfile=options.tls_key)
    finally:
        jobs.stop()


def _quiet_progress_polls(record: logging.LogRecord) -> bool:
    """Leave out of the access log the answered progress polls (several a second per
    running job); submissions, uploads, results and every error stay."""
    arguments = record.args if isinstance(record.args, tuple) else ()
    if len(arguments) == 5:
        _, method, path, _, status = arguments
        return not (method == "GET" and status == 200 and path.startswith("/v1/jobs/") and "/result" not in path)
    return True
