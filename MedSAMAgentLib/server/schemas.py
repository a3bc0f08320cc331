"""The server's request and response bodies (API version 2)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..orientation import VIEWS
from ..segmenters import SEGMENTERS

Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the volume's voxels and geometry")]
JobId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="a random id the client chooses")]
UploadId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
JobState = Literal["queued", "running", "done", "failed", "cancelled"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    api_version: int
    server_version: str


class ServerInfo(BaseModel):
    api_version: int
    server_version: str
    device: str
    segmenters: list[str]
    default_segmenter: str
    agent: str | None = Field(description="who places prompts for a target, or None when this server runs no agent")
    agent_unavailable: str | None = Field(None, description="why the configured agent is not running (its model is missing), and the fix")
    segmenters_unavailable: dict[str, str] = Field(default_factory=dict,
                                                   description="segmenters whose weights are not on the server, with the fix")
    part_bytes: int = Field(description="the largest upload part accepted")
    max_volume_bytes: int = Field(description="the largest volume accepted, uncompressed")
    queue_limit: int
    queue_waiting: int
    store_bytes: int
    store_max_bytes: int


class ErrorBody(BaseModel):
    error: str = Field(description="one line for the user")
    type: str = Field("", description="the kind of error, e.g. PromptError")


class VolumeStatus(BaseModel):
    volume: Digest
    stored: bool


class UploadStart(Strict):
    volume: Digest
    size: int = Field(gt=0, description="bytes of the compressed volume blob")


class UploadTicket(BaseModel):
    upload: str | None = Field(description="the upload's id, or None when the volume is already stored")
    part_bytes: int
    stored: bool


class Point(Strict):
    x: float
    y: float
    positive: bool


class Prompts(Strict):
    box: Annotated[list[float], Field(min_length=4, max_length=4)] | None = None
    points: list[Point] = Field(default_factory=list, max_length=256)


class EncodedMask(Strict):
    shape: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=2, max_length=2)]
    bits: str = Field(description="base64 of the zstd-compressed, bit-packed mask")


class EncodedVolumeMask(Strict):
    shape: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=3, max_length=3, description="(k, j, i): the volume's")]
    bits: str = Field(description="base64 of the zstd-compressed, bit-packed mask")


class JobRequest(Strict):
    """A whole job (the server keeps only caches): prompts on the key slice and on further
    slices, or a target for the agent; locked slices; and, for an update, the earlier result
    and its seeds."""

    volume: Digest
    view: Literal[VIEWS] = "axial"
    window: Annotated[str, Field(max_length=40)] | None = None
    key_slice: Annotated[int, Field(ge=0)] | None = None
    target: Annotated[str, Field(max_length=500)] = ""
    prompts: Prompts | None = Field(None, description="the prompts on the key slice")
    prompts_at: dict[Annotated[int, Field(ge=0)], Prompts] = Field(
        default_factory=dict, max_length=10_000,
        description="prompts on further slices along the view, each slice one more seed (on the key slice they replace `prompts`)",
    )
    key_mask: EncodedMask | None = None
    locked: dict[Annotated[int, Field(ge=0)], EncodedMask] = Field(default_factory=dict)
    previous: EncodedVolumeMask | None = Field(
        None, description="an earlier result on the volume's grid, to update: only the slices the new seeds can change are computed",
    )
    settled: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=list, max_length=10_000, description="the earlier result's seed slices (display indices along the view)",
    )
    slice_range: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] | None = None
    seeded_components_only: bool = True
    segmenter: Literal[SEGMENTERS] | None = None
    recheck_every: Annotated[int, Field(ge=1)] | None = None


class JobStatus(BaseModel):
    id: JobId
    status: JobState
    version: int = Field(0, description="grows at every change of the job")
    position: int = Field(0, description="jobs running or waiting before this one")
    step: str = ""
    done: int = 0
    total: int = 0
    error: str = ""
    error_type: str = ""
    records: list[dict] = Field(default_factory=list, description="the agent's record, for a failed or cancelled job")
