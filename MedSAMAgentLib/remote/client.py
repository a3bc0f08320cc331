"""The engine on a MedSAM-Agent server: the same requests and results as `LocalEngine`,
sent over HTTP (API version 2).

A run: check the server's API version (once), the key, and that the server has the job's
segmenter weights and agent (refused before any voxel is sent); name the volume by its
SHA-256, submit the job under a random id, upload the volume only when the server says it
lacks it, follow the job's progress, fetch the result. The client recovers on its own from what a department
server does in normal life: a restart (the job is submitted again, the volume uploaded
again if the store went with it), an eviction (uploaded again), a full queue (waits the
time the server asks). Everything else becomes one clear error line.

requests, numpy and zstandard only: importing this module loads no torch.
"""

from __future__ import annotations

import time
import uuid

import requests

from .. import __version__
from ..engine.interface import Engine, SegmentationOutcome, SegmentationRequest
from ..errors import AgentError, Cancelled, CheckpointError, MedSAMAgentError, PromptError, ServerError
from ..progress import CancelCheck, ProgressCallback, check_cancel, report
from . import errors as wire_errors
from .wire import API_VERSION, API_VERSION_HEADER, VOLUME_HEADER, decode_outcome, encode_volume, request_to_json, volume_digest

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 120.0
UNREACHABLE_GRACE_SECONDS = 30.0
LONG_POLL_SECONDS = 10.0
CANCEL_POLL_SECONDS = 0.5  # how soon a cancel reaches the server at most
CANCEL_RECORD_WAIT_SECONDS = 10.0  # for a cancelled job's record, after the server's own wait
FINISHED = ("done", "failed", "cancelled")
RESUBMISSIONS = 3
PROXY_UNAVAILABLE = (502, 504)  # a reverse proxy whose worker is down or restarting


class RemoteEngine(Engine):
    def __init__(self, url: str, api_key: str | None = None, key_source: str = "the API key",
                 unreachable_grace: float = UNREACHABLE_GRACE_SECONDS):
        """`key_source` says where the key came from, for the message when it is refused."""
        if not url.startswith(("http://", "https://")):
            raise ServerError(f"server URL {url!r}: give it as http://host:port or https://host")
        self.url = url.rstrip("/")
        self.key_source = key_source
        self.unreachable_grace = unreachable_grace
        self._session = requests.Session()
        self._session.headers[API_VERSION_HEADER] = str(API_VERSION)
        self._session.headers["User-Agent"] = f"medsam-agent/{__version__}"
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"
        self._server_checked = False

    def __repr__(self) -> str:  # never show the key
        return f"RemoteEngine(url={self.url!r})"

    def describe(self) -> str:
        return f"the server at {self.url}"

    def close(self) -> None:
        self._session.close()

    # -- a job --------------------------------------------------------------------------
    def run(self, request: SegmentationRequest, progress: ProgressCallback | None = None,
            cancel: CancelCheck | None = None) -> SegmentationOutcome:
        request.check()
        if request.truth is not None:
            raise PromptError("the simulated clinician needs the ground truth, which never leaves this computer: run it locally")
        self.preflight(request.segmenter, request.uses_agent, cancel)
        digest = volume_digest(request.volume)
        body = request_to_json(request, digest)
        self._session.headers[VOLUME_HEADER] = digest
        for _ in range(RESUBMISSIONS + 1):
            job_id = uuid.uuid4().hex
            self._submit(job_id, body, request, digest, progress, cancel)
            status = self._follow(job_id, progress, cancel)
            if status is not None:
                break
        else:
            raise ServerError(f"the server at {self.url} lost the job {RESUBMISSIONS + 1} times (restarting?); try again later")
        if status["status"] == "done":
            report(progress, "fetching the result", 0, 1)
            return decode_outcome(self._call("GET", f"/v1/jobs/{job_id}/result", cancel).content)
        raise wire_errors.from_status(status)

    def preflight(self, segmenter: str | None = None, uses_agent: bool = False, cancel: CancelCheck | None = None) -> None:
        """Before any volume is read or sent: the server answers, speaks this API version,
        accepts the key, has the segmenter, and runs its agent when the job needs one."""
        self.check_server(cancel)
        info = self.server_info(cancel)
        if segmenter and segmenter not in info.get("segmenters", []):
            raise ServerError(f"the server at {self.url} has no segmenter {segmenter!r}; it has {', '.join(info.get('segmenters', []))}")
        missing_weights = info.get("segmenters_unavailable", {}).get(segmenter or info.get("default_segmenter"))
        if missing_weights:
            raise CheckpointError(f"on the server at {self.url}: {missing_weights}")
        if uses_agent and not info.get("agent"):
            raise AgentError(info.get("agent_unavailable") or f"the server at {self.url} runs no agent: give prompts instead of a target")

    def server_info(self, cancel: CancelCheck | None = None) -> dict:
        """The server's /v1/info: its models, device, agent and limits (needs the key)."""
        return self._call("GET", "/v1/info", cancel).json()

    def health(self, cancel: CancelCheck | None = None) -> dict:
        """The server's open /health answer: its API version and its own version."""
        return self._call("GET", "/health", cancel).json()

    def check_server(self, cancel: CancelCheck | None = None) -> dict:
        """The server's health; refuses a server of another API version, naming which side
        to upgrade."""
        health = self.health(cancel)
        if not self._server_checked:
            theirs = health.get("api_version")
            if theirs != API_VERSION:
                side = "this client" if isinstance(theirs, int) and theirs > API_VERSION else "the server"
                raise ServerError(
                    f"the server at {self.url} (medsam-agent {health.get('server_version', '?')}) speaks API version {theirs}, "
                    f"this client (medsam-agent {__version__}) speaks {API_VERSION}: upgrade {side}"
                )
            self._server_checked = True
        return health

    def _submit(self, job_id, body, request, digest, progress, cancel) -> None:
        """Queue the job, uploading the volume first when the server lacks it."""
        uploaded = False
        while True:
            check_cancel(cancel)
            response = self._call("PUT", f"/v1/jobs/{job_id}", cancel, json=body, expect=(200, 202, 404, 503))
            if response.status_code in (200, 202):
                return
            if response.status_code == 503:
                wait = _retry_after(response)
                report(progress, f"the server is busy; trying again in {wait:.0f} s", 0, 1)
                _sleep(wait, cancel)
                continue
            if uploaded or wire_errors.kind(response) != "VolumeMissing":
                raise wire_errors.from_response(response, self)
            self._upload(request, digest, progress, cancel)
            uploaded = True

    def _upload(self, request, digest, progress, cancel) -> None:
        report(progress, "compressing the volume", 0, 1)
        digest_again, blob = encode_volume(request.volume)
        if digest_again != digest:
            raise MedSAMAgentError("the volume changed while it was being sent; run again")
        ticket = self._call("POST", "/v1/uploads", cancel, json={"volume": digest, "size": len(blob)}).json()
        if ticket["stored"]:
            return
        upload, part_bytes = ticket["upload"], int(ticket["part_bytes"])
        parts = range(0, len(blob), part_bytes)
        for number, start in enumerate(parts):
            report(progress, f"uploading the volume ({len(blob) / 2**20:.1f} MB compressed)", start, len(blob))
            self._call("PUT", f"/v1/uploads/{upload}/{number}", cancel, data=blob[start : start + part_bytes],
                       headers={"Content-Type": "application/octet-stream"}, expect=(204,))
        report(progress, "the server is checking the volume", len(blob), len(blob))
        self._call("POST", f"/v1/uploads/{upload}/complete", cancel, expect=(201,))

    def _follow(self, job_id, progress, cancel) -> dict | None:
        """Follow the job until it ends, by long polls that answer at each change (short
        ones while the caller can cancel); None when the server no longer knows the job."""
        version = -1
        wait = CANCEL_POLL_SECONDS if cancel is not None else LONG_POLL_SECONDS
        while True:
            if cancel is not None and cancel():
                raise self._cancel(job_id)
            response = self._call("GET", f"/v1/jobs/{job_id}", cancel, expect=(200, 404), params={"after": version, "wait": wait})
            if response.status_code == 404:
                return None
            status = response.json()
            version = status["version"]
            if status["status"] in FINISHED:
                return status
            if status["status"] == "queued":
                report(progress, f"waiting for the server: {status['position']} jobs ahead", 0, 1)
            else:
                report(progress, status["step"], status["done"], max(status["total"], 1))

    def _cancel(self, job_id: str) -> MedSAMAgentError:
        """Stop the job and wait a little for it to stop: the error to raise, a cancelled
        job's with the agent's record so far."""
        deadline = time.monotonic() + CANCEL_RECORD_WAIT_SECONDS
        try:
            status = self._session.delete(f"{self.url}/v1/jobs/{job_id}", timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)).json()
            while status.get("status") not in FINISHED and time.monotonic() < deadline:
                status = self._session.get(f"{self.url}/v1/jobs/{job_id}", params={"after": status["version"], "wait": CANCEL_POLL_SECONDS},
                                           timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)).json()
        except (requests.RequestException, ValueError, KeyError):
            return Cancelled()  # the server is gone, and the job with it
        return wire_errors.from_status(status) if status.get("status") in ("failed", "cancelled") else Cancelled()

    # -- HTTP ---------------------------------------------------------------------------
    def _call(self, method: str, path: str, cancel: CancelCheck | None, expect=(200, 201, 202), **options) -> requests.Response:
        """One request, tried again while the server is unreachable or its proxy has no
        worker (a restart) for up to the grace period; a status outside `expect` becomes
        the server's error line."""
        deadline = time.monotonic() + self.unreachable_grace
        delay = 0.2
        while True:
            try:
                response = self._session.request(method, self.url + path, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), **options)
            except requests.ConnectionError as error:
                failure = f"cannot reach the MedSAM-Agent server at {self.url} ({_reason(error)}); check the URL and that the server runs"
            except requests.Timeout:
                raise ServerError(f"the MedSAM-Agent server at {self.url} did not answer in time") from None
            else:
                if response.status_code in expect:
                    return response
                if response.status_code not in PROXY_UNAVAILABLE:
                    raise wire_errors.from_response(response, self)
                failure = f"the server at {self.url} has no worker available (HTTP {response.status_code}); try again later"
            if time.monotonic() >= deadline:
                raise ServerError(failure)
            check_cancel(cancel)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _retry_after(response: requests.Response) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", "2")), 0.5), 60.0)
    except ValueError:
        return 2.0


def _sleep(seconds: float, cancel: CancelCheck | None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        check_cancel(cancel)
        time.sleep(min(0.1, end - time.monotonic()))


def _reason(error: Exception) -> str:
    text = str(error)
    for known in ("Connection refused", "Name or service not known", "No route to host", "timed out"):
        if known in text:
            return known.lower()
    return text.splitlines()[0][:120] if text else error.__class__.__name__

