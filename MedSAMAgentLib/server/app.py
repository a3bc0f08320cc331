"""The department server's web API (version 2): volumes in by content hash, jobs that
carry their whole request, progress by polling, results as compressed masks.

Every error is an HTTP status with a JSON body `{"error": one line, "type": kind}`: 401 for
a missing or unknown key, 404 for a volume (or job) the server does not hold, 413 for a body
over the limit, 422 for a request that cannot be run, 426 for a client of another API
version, 503 with `Retry-After` when the queue is full. Keys are compared in constant time
and never logged or echoed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..engine.local import LocalEngine
from ..errors import MedSAMAgentError
from ..remote.wire import API_VERSION, API_VERSION_HEADER, CorruptDataError, DigestMismatchError, request_from_json
from ..segmenters import SEGMENTERS
from . import schemas
from .jobs import FINISHED, Job, JobQueue, QueueFull
from .keys import KeyFile
from .limits import BodyLimit, BodyTooLarge
from .store import UnknownUpload, VolumeStore

LOCAL_USER = "local"
CANCEL_WAIT_SECONDS = 2.0
RETRY_AFTER_SECONDS = 2
MAX_WAIT_SECONDS = 30.0
LONG_POLL_STEP_SECONDS = 0.05


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers


@dataclass
class ServerSettings:
    keys: KeyFile | None  # None: no keys (loopback only)
    part_bytes: int
    max_volume_bytes: int
    max_json_bytes: int


def create_app(engine: LocalEngine, store: VolumeStore, jobs: JobQueue, settings: ServerSettings) -> FastAPI:
    app = FastAPI(title="MedSAM-Agent server", version=__version__, summary="Text- and prompt-driven 3D segmentation for 3D Slicer")
    app.add_middleware(BodyLimit, limit_for=lambda path: settings.part_bytes if "/uploads/" in path else settings.max_json_bytes)
    _add_error_handlers(app)
    bearer = HTTPBearer(auto_error=False, description="an API key made with medsam-agent add-key")

    def caller(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
        """The key's owner; every /v1 route needs one unless the server runs without keys."""
        if settings.keys is None:
            return LOCAL_USER
        name = settings.keys.name_of(credentials.credentials if credentials else None)
        if name is None:
            raise ApiError(401, "missing or unknown API key", "AuthenticationError", {"WWW-Authenticate": "Bearer"})
        return name

    def same_api(request: Request) -> None:
        sent = request.headers.get(API_VERSION_HEADER)
        if sent is None or sent == str(API_VERSION):
            return
        newer = "the client" if sent.isdigit() and int(sent) > API_VERSION else "the server"
        older = "the server" if newer == "the client" else "the client"
        raise ApiError(426, f"the client speaks API version {sent}, this server (medsam-agent {__version__}) speaks "
                            f"version {API_VERSION}: upgrade {older} to match {newer}", "VersionMismatch")

    @app.get("/health", response_model=schemas.Health, tags=["health"])
    def health() -> schemas.Health:
        """Open to all: the server is up and which API it speaks."""
        return schemas.Health(api_version=API_VERSION, server_version=__version__)

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(same_api)], responses={401: {"model": schemas.ErrorBody}})

    @v1.get("/info", response_model=schemas.ServerInfo)
    def info(user: str = Depends(caller)) -> schemas.ServerInfo:
        return schemas.ServerInfo(
            api_version=API_VERSION, server_version=__version__, device=engine.device, segmenters=list(SEGMENTERS),
            default_segmenter=engine.default_segmenter,
            agent=engine.policy().describe() if engine.policy_spec and not engine.agent_unavailable else None,
            agent_unavailable=engine.agent_unavailable, segmenters_unavailable=engine.segmenters_unavailable(),
            part_bytes=settings.part_bytes, max_volume_bytes=settings.max_volume_bytes, queue_limit=jobs.limit,
            queue_waiting=jobs.waiting(), store_bytes=store.usage(), store_max_bytes=store.max_bytes,
        )

    @v1.get("/volumes/{digest}", response_model=schemas.VolumeStatus, responses={404: {"model": schemas.ErrorBody}})
    def volume_status(digest: schemas.Digest, user: str = Depends(caller)) -> schemas.VolumeStatus:
        if not store.has(digest):
            raise ApiError(404, f"volume {digest[:12]}... is not on this server", "VolumeMissing")
        return schemas.VolumeStatus(volume=digest, stored=True)

    @v1.post("/uploads", response_model=schemas.UploadTicket, status_code=201, responses={413: {"model": schemas.ErrorBody}})
    def begin_upload(body: schemas.UploadStart, response: Response, user: str = Depends(caller)) -> schemas.UploadTicket:
        if store.has(body.volume):
            response.status_code = 200
            return schemas.UploadTicket(upload=None, part_bytes=settings.part_bytes, stored=True)
        if body.size > settings.max_volume_bytes:
            raise ApiError(413, f"the volume is {body.size} bytes compressed; this server accepts up to {settings.max_volume_bytes}",
                           "TooLarge")
        return schemas.UploadTicket(upload=store.begin_upload(body.volume, body.size), part_bytes=settings.part_bytes, stored=False)

    @v1.put("/uploads/{upload}/{part}", status_code=204, responses={404: {"model": schemas.ErrorBody}, 413: {"model": schemas.ErrorBody}})
    async def upload_part(upload: schemas.UploadId, part: Annotated[int, Path(ge=0, le=1_000_000)], request: Request,
                          user: str = Depends(caller)) -> Response:
        data = await request.body()
        await run_in_threadpool(store.write_part, upload, part, data)
        return Response(status_code=204)

    @v1.post("/uploads/{upload}/complete", response_model=schemas.VolumeStatus, status_code=201,
             responses={404: {"model": schemas.ErrorBody}, 422: {"model": schemas.ErrorBody}})
    def complete_upload(upload: schemas.UploadId, user: str = Depends(caller)) -> schemas.VolumeStatus:
        return schemas.VolumeStatus(volume=store.complete(upload), stored=True)

    @v1.put("/jobs/{job_id}", response_model=schemas.JobStatus, status_code=202,
            responses={404: {"model": schemas.ErrorBody}, 422: {"model": schemas.ErrorBody}, 503: {"model": schemas.ErrorBody}})
    def submit_job(job_id: schemas.JobId, body: schemas.JobRequest, response: Response, user: str = Depends(caller)) -> schemas.JobStatus:
        """Queue a job (a resent job id returns the job already queued)."""
        existing = jobs.get(job_id, user)
        if existing is not None:
            response.status_code = 200
            return _status(existing, jobs)
        volume = store.load(body.volume)
        if volume is None:
            raise ApiError(404, f"volume {body.volume[:12]}... is not on this server; upload it first", "VolumeMissing")
        request = request_from_json(body.model_dump(), volume)
        if request.target and engine.policy_spec is None:
            raise ApiError(422, "this server runs no agent: give prompts instead of a target", "AgentError")
        request.check()
        engine.preflight(request.segmenter, request.uses_agent)
        job, created = jobs.submit(job_id, user, request)
        if not created:
            response.status_code = 200
        return _status(job, jobs)

    @v1.get("/jobs/{job_id}", response_model=schemas.JobStatus, responses={404: {"model": schemas.ErrorBody}})
    async def job_status(
        job_id: schemas.JobId,
        after: Annotated[int, Query(description="answer once the job's version passes this")] = -1,
        wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS, description="longest wait for that, in seconds")] = 0.0,
        user: str = Depends(caller),
    ) -> schemas.JobStatus:
        """The job's state; with `after` and `wait`, a long poll that answers at the job's
        next change (a slice done, a turn taken, the end), so clients need not poll fast."""
        job = _owned(jobs, job_id, user)
        deadline = time.monotonic() + wait
        while job.version <= after and time.monotonic() < deadline:
            await asyncio.sleep(LONG_POLL_STEP_SECONDS)
        return _status(job, jobs)

    @v1.get("/jobs/{job_id}/result", response_class=Response,
            responses={404: {"model": schemas.ErrorBody}, 409: {"model": schemas.ErrorBody}})
    def job_result(job_id: schemas.JobId, user: str = Depends(caller)) -> Response:
        job = _owned(jobs, job_id, user)
        if job.result is None:
            raise ApiError(409, f"job {job_id} is {job.status}; it has no result", "NoResult")
        return Response(job.result, media_type="application/octet-stream")

    @v1.delete("/jobs/{job_id}", response_model=schemas.JobStatus, responses={404: {"model": schemas.ErrorBody}})
    def cancel_job(job_id: schemas.JobId, user: str = Depends(caller)) -> schemas.JobStatus:
        job = _owned(jobs, job_id, user)
        if job.status not in FINISHED:
            jobs.cancel(job, CANCEL_WAIT_SECONDS)
        return _status(job, jobs)

    app.include_router(v1)
    return app


def _owned(jobs: JobQueue, job_id: str, user: str) -> Job:
    job = jobs.get(job_id, user)
    if job is None:
        raise ApiError(404, f"job {job_id} is not on this server", "JobMissing")
    return job


def _status(job: Job, jobs: JobQueue) -> schemas.JobStatus:
    return schemas.JobStatus(
        id=job.id, status=job.status, version=job.version, position=jobs.position(job), step=job.step, done=job.done, total=job.total,
        error=job.error, error_type=job.error_type, records=[record.as_json() for record in job.records],
    )


def _public_kind(error: MedSAMAgentError) -> str:
    """The error's kind as clients know it: the nearest class of `errors` (a finer class of
    an inner layer, such as a missing weights file, is sent as its public parent)."""
    return next(cls.__name__ for cls in type(error).__mro__ if cls.__module__ == MedSAMAgentError.__module__)


def _add_error_handlers(app: FastAPI) -> None:
    def body(message: str, kind: str) -> dict:
        return {"error": message, "type": kind}

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return JSONResponse(body(error.message, error.kind), status_code=error.status, headers=error.headers)

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, error: QueueFull):
        return JSONResponse(body(str(error), "QueueFull"), status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    @app.exception_handler(UnknownUpload)
    async def unknown_upload(request: Request, error: UnknownUpload):
        return JSONResponse(body(str(error), "UnknownUpload"), status_code=404)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, error: BodyTooLarge):
        return JSONResponse(body(error.detail, "TooLarge"), status_code=413)

    @app.exception_handler(MedSAMAgentError)
    async def refused(request: Request, error: MedSAMAgentError):
        kind = "CorruptData" if isinstance(error, (CorruptDataError, DigestMismatchError)) else _public_kind(error)
        return JSONResponse(body(str(error), kind), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'][1:]) or 'body'}: {problem['msg']}" for problem in error.errors()[:3]
        )
        return JSONResponse(body(f"invalid request: {problems}", "InvalidRequest"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        return JSONResponse(body(str(error.detail), "HTTPError"), status_code=error.status_code, headers=getattr(error, "headers", None))
