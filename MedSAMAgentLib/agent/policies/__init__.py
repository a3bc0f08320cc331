"""Who plays the agent: the released model in-process (`qwen`), the same model behind an
OpenAI-compatible server (`endpoint`), or a simulated clinician with the ground truth
(`clinician`, the reference for evaluation). All answer in the model's tool-call text, so
one parser and one loop serve them all."""

from __future__ import annotations

from .base import Observation, Policy

POLICIES = ("qwen", "endpoint", "clinician")


def create_policy(name: str, **options) -> Policy:
    """`options`: model (qwen, endpoint), device (qwen), url / api_key_env / timeout (endpoint),
    truth (clinician; a slice mask, or set later per slice)."""
    from ...errors import AgentError
    from ...segmenters import models_installed

    if name == "qwen":
        with models_installed("the qwen policy"):
            from .qwen import QwenPolicy

        return QwenPolicy(model=options.get("model"), device=options.get("device", "auto"))
    if name == "endpoint":
        from .endpoint import EndpointPolicy

        if not options.get("url"):
            raise AgentError("the endpoint policy needs --endpoint URL (an OpenAI-compatible server)")
        return EndpointPolicy(
            url=options["url"],
            model=options.get("model"),
            api_key_env=options.get("api_key_env") or "MEDSAM_AGENT_API_KEY",
            timeout=options.get("timeout", 120.0),
            api_key=options.get("api_key"),
        )
    if name == "clinician":
        with models_installed("the clinician policy"):
            from .clinician import ClinicianPolicy

        return ClinicianPolicy(truth=options.get("truth"))
    raise AgentError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}")


def check_policy_model(name: str, model: str | None, download: bool = True) -> None:
    """Refuse a policy whose model is not on this machine (nor, with `download`, obtainable
    from the hub now), without loading it; only the qwen policy loads a model here."""
    if name == "qwen":
        from .agent_model import model_folder

        model_folder(model, download)


__all__ = ["Observation", "Policy", "POLICIES", "check_policy_model", "create_policy"]
