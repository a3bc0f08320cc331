"""The engine in this process: segmenters and the agent's policy are created on first use
and kept for the next jobs (a department server runs one of these per GPU)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..errors import AgentError, MedSAMAgentError
from ..progress import CancelCheck, ProgressCallback
from ..segmenters import DEFAULT_MEDSAM2_TURN_SIZE, DEFAULT_RUNTIME, DEFAULT_SEGMENTER, SEGMENTERS
from .interface import Engine, SegmentationOutcome, SegmentationRequest

MAX_LOADED_SEGMENTERS = 2


@dataclass(frozen=True)
class PolicySpec:
    """Who plays the agent (see `agent.policies.create_policy`). `api_key` is the endpoint's
    key when it does not come from the environment variable `api_key_env`."""

    name: str = "qwen"
    model: str | None = None
    endpoint: str | None = None
    api_key_env: str = "MEDSAM_AGENT_API_KEY"
    api_key: str | None = None
    timeout: float = 120.0  # seconds the endpoint may take for one answer

    def __repr__(self) -> str:  # never show the key
        return f"PolicySpec(name={self.name!r}, model={self.model!r}, endpoint={self.endpoint!r})"


class LocalEngine(Engine):
    def __init__(
        self,
        default_segmenter: str = DEFAULT_SEGMENTER,
        checkpoints: dict[str, str] | None = None,
        device: str = "auto",
        policy: PolicySpec | None = None,
        runtime: str = DEFAULT_RUNTIME,
        medsam2_turn_size: int = DEFAULT_MEDSAM2_TURN_SIZE,
        downloads: bool = True,
    ):
        """`checkpoints`: weights per segmenter name (others use their default weights);
        `policy`: None for an engine that runs no agent; `runtime`: what runs the image
        encoders on the CPU (see `segmenters.runtimes`); `medsam2_turn_size`: MedSAM2's image
        size for the agent's turns (propagation runs at MedSAM2's 512 px either way);
        `downloads`: whether weights missing here are fetched from the hub when it answers
        (a server uses only what is here)."""
        if default_segmenter not in SEGMENTERS:
            raise MedSAMAgentError(f"unknown segmenter {default_segmenter!r}; choose one of {', '.join(SEGMENTERS)}")
        self.default_segmenter = default_segmenter
        self.checkpoints = dict(checkpoints or {})
        self.device = device
        self.runtime = runtime
        self.downloads = downloads
        self.medsam2_turn_size = medsam2_turn_size
        self.policy_spec = policy
        self.agent_unavailable: str | None = None  # why a configured agent cannot run here (see `without_agent`)
        self._segmenters: dict[str, object] = {}
        self._policy = None

    def describe(self) -> str:
        agent = f"; agent: {self.policy().describe()}" if self._policy is not None else ""
        turns = f" (agent's turns at {self.medsam2_turn_size} px)" if self.default_segmenter == "medsam2" else ""
        return f"this computer ({self.device}), segmenter {self.default_segmenter}{turns}{agent}"

    def preflight(self, segmenter: str | None = None, uses_agent: bool = False) -> None:
        """Refuse at once a job whose weights are not on this machine (nor obtainable from the
        hub now), or that needs an agent this engine has not: no model is loaded."""
        from ..segmenters import segmenter_weights

        name = segmenter or self.default_segmenter
        if name not in SEGMENTERS:
            raise MedSAMAgentError(f"unknown segmenter {name!r}; choose one of {', '.join(SEGMENTERS)}")
        if name not in self._segmenters:
            segmenter_weights(name, self.checkpoints.get(name), self.downloads)
        if uses_agent and self._policy is None:
            if self.agent_unavailable:
                raise AgentError(self.agent_unavailable)
            if self.policy_spec is None:
                raise AgentError("no agent is configured here: give prompts instead of a target")
            from ..agent.policies import check_policy_model

            check_policy_model(self.policy_spec.name, self.policy_spec.model, self.downloads)

    def segmenters_unavailable(self) -> dict[str, str]:
        """Each segmenter that cannot run here, with why (its weights are missing)."""
        unavailable = {}
        for name in SEGMENTERS:
            try:
                self.preflight(name)
            except MedSAMAgentError as error:
                unavailable[name] = str(error)
        return unavailable

    @property
    def agent_ready(self) -> bool:
        return self.policy_spec is not None and not self.agent_unavailable

    def without_agent(self, reason: str) -> None:
        """Run prompts only from now on; a target is refused with `reason`."""
        self.agent_unavailable = reason
        self._policy = None

    def segmenter(self, name: str | None = None):
        """The named segmenter, loaded once; at most `MAX_LOADED_SEGMENTERS` stay in memory."""
        from ..segmenters import create_segmenter

        name = name or self.default_segmenter
        if name not in self._segmenters:
            if name not in SEGMENTERS:
                raise MedSAMAgentError(f"unknown segmenter {name!r}; choose one of {', '.join(SEGMENTERS)}")
            while len(self._segmenters) >= MAX_LOADED_SEGMENTERS:
                self._segmenters.pop(next(iter(self._segmenters)))
            self._segmenters[name] = create_segmenter(name, self.checkpoints.get(name), self.device, self.runtime, self.medsam2_turn_size)
        return self._segmenters[name]

    def policy(self):
        if self._policy is None:
            if self.agent_unavailable:
                raise AgentError(self.agent_unavailable)
            if self.policy_spec is None:
                raise AgentError("no agent is configured here: give prompts instead of a target")
            from ..agent.policies import create_policy

            spec = self.policy_spec
            self._policy = create_policy(
                spec.name, model=spec.model, device=self.device, url=spec.endpoint, api_key_env=spec.api_key_env, api_key=spec.api_key,
                timeout=spec.timeout,
            )
        return self._policy

    def run(
        self,
        request: SegmentationRequest,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> SegmentationOutcome:
        from ..segmenters.base import slice_frames

        request.check()
        self.preflight(request.segmenter, request.uses_agent)
        started = time.perf_counter()
        frames = slice_frames(request.volume, request.view, request.window, target=request.target or None)
        policy = self.policy() if request.uses_agent else None
        segmenter = self.segmenter(request.segmenter)
        if policy is not None:
            return self._run_agent(request, frames, segmenter, policy, started, progress, cancel)
        from ..propagation import VolumeRequest, segment

        volume_request = VolumeRequest(
            key_slice=request.key_slice,
            prompts=request.prompts,
            key_mask=request.key_mask,
            locked=request.locked,
            slice_range=request.slice_range,
            seeded_components_only=request.seeded_components_only,
            prompts_at=request.prompts_at,
            previous=None if request.previous is None else frames.plane.to_display(request.previous),
            settled=request.settled,
        )
        result = segment(request.volume, segmenter, volume_request, frames, progress=progress, cancel=cancel)
        return SegmentationOutcome(
            mask=result.mask, view=request.view, key_slice=request.key_slice, window=frames.window.name,
            seconds=time.perf_counter() - started,
        )

    def _run_agent(self, request, frames, segmenter, policy, started, progress, cancel) -> SegmentationOutcome:
        from ..agent.volume_agent import AgentRequest, segment_with_agent

        agent_request = AgentRequest(
            description=request.target,
            key_slice=request.key_slice,
            recheck_every=request.recheck_every,
            locked=dict(request.locked),
            slice_range=request.slice_range,
            seeded_components_only=request.seeded_components_only,
            prompts_at=request.prompts_at,
        )
        result = segment_with_agent(
            request.volume, frames, segmenter, policy, agent_request, truth=request.truth, progress=progress, cancel=cancel
        )
        return SegmentationOutcome(
            mask=result.segmentation.mask, view=request.view, key_slice=result.key_slice, window=frames.window.name,
            seconds=time.perf_counter() - started, records=result.records(), corrections=list(result.corrections),
        )

    def close(self) -> None:
        self._segmenters.clear()
        self._policy = None
