"""What a department server meets in normal life, on real server processes: restarts,
evictions, purges, full queues, several users at once, damaged uploads, malformed and
oversized requests, clients of another version; and keys that never show."""

from __future__ import annotations

import json
import stat
import threading

import numpy as np
import pytest
import requests

from MedSAMAgentLib.errors import PromptError
from MedSAMAgentLib.remote import RemoteEngine, wire
from Testing.fixtures.server import ServerProcess, add_key, kidney_request, run_medsam_agent, self_signed_certificate


def headers(key: str, **extra) -> dict:
    return {"Authorization": f"Bearer {key}", wire.API_VERSION_HEADER: str(wire.API_VERSION), **extra}


def test_restart_purge_and_eviction_are_recovered_without_an_error(tmp_path, keys, phantom, local_engine):
    key = keys[1]["alice"]
    # 3 slices: the server's encoder cache (4 slices) then holds a whole job, and each of the
    # seven jobs on a running server after its first costs no encoding
    request = kidney_request(phantom, half_range=1)
    expected = local_engine.run(request).mask
    shifted = kidney_request(phantom, half_range=1)
    shifted.volume = type(request.volume)(request.volume.array + 1, request.volume.geometry, request.volume.modality)
    blob_bytes = len(wire.encode_volume(request.volume)[1])
    store = tmp_path / "store"
    cap_mb = 1.5 * blob_bytes / 2**30  # room for one volume, not two
    server = ServerProcess(tmp_path, store, "--no-agent", "--store-max-gb", f"{cap_mb:.9f}", keys=keys[0]).start()
    remote = RemoteEngine(server.url, api_key=key)
    try:
        assert np.array_equal(remote.run(request).mask, expected) and server.uploads() == 1
        assert stat.S_IMODE(store.stat().st_mode) == 0o700
        stored = list((store / "volumes").glob("*.vol"))
        assert len(stored) == 1 and stat.S_IMODE(stored[0].stat().st_mode) == 0o600

        server.kill()  # a crash between jobs; the store survives
        server.start()
        assert np.array_equal(remote.run(request).mask, expected) and server.uploads() == 1

        purged = []

        def purge_while_the_job_runs(step, done, total):
            if step.startswith("litemedsam: slice") and not purged:
                purged.append(run_medsam_agent("purge-store", str(store)))

        assert np.array_equal(remote.run(request, progress=purge_while_the_job_runs).mask, expected)
        assert purged[0].returncode == 0 and "removed 1 files" in purged[0].stderr and not list((store / "volumes").glob("*.vol"))
        assert np.array_equal(remote.run(request).mask, expected) and server.uploads() == 2

        remote.run(shifted)  # the second volume pushes the first out of the capped store
        assert server.uploads() == 3 and len(list((store / "volumes").glob("*.vol"))) == 1
        assert np.array_equal(remote.run(request).mask, expected) and server.uploads() == 4

        server.kill()  # a restart on a new, empty store: the volume is sent again
        server.store = tmp_path / "new-store"
        server.start()
        assert np.array_equal(remote.run(request).mask, expected) and server.uploads() == 5
    finally:
        server.stop()
    assert key not in server.log()


def test_purge_refuses_a_folder_that_is_not_a_store(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    purge = run_medsam_agent("purge-store", str(tmp_path))
    assert purge.returncode == 2 and "is not a MedSAM-Agent store" in purge.stderr and (tmp_path / "precious.txt").exists()


def test_four_clients_at_once_meet_a_full_queue_and_wait_it_out(tmp_path, keys, phantom, local_engine):
    requests_by_client = [kidney_request(phantom, half_range=1 + number % 2) for number in range(4)]
    for number, request in enumerate(requests_by_client):
        request.key_slice += number - 1
    expected = [local_engine.run(request).mask for request in requests_by_client]
    names = ["alice", "bob", "alice", "bob"]
    with ServerProcess(tmp_path, tmp_path / "store", "--no-agent", "--queue-size", "1", keys=keys[0]) as server:
        RemoteEngine(server.url, api_key=keys[1]["alice"]).run(requests_by_client[0])  # the volume is stored once
        results, failures = [None] * 4, []
        start = threading.Barrier(4)

        def client(number):
            try:
                engine = RemoteEngine(server.url, api_key=keys[1][names[number]])
                start.wait()
                results[number] = engine.run(requests_by_client[number]).mask
            except Exception as error:  # noqa: BLE001 - reported below
                failures.append(f"client {number}: {error}")

        threads = [threading.Thread(target=client, args=(number,)) for number in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
        assert not failures, failures
        assert all(np.array_equal(result, wanted) for result, wanted in zip(results, expected))
        log = server.log()
    assert '"PUT /v1/jobs/' in log and " 503" in log, "no client met a full queue"
    assert keys[1]["alice"] not in log and keys[1]["bob"] not in log


def test_one_users_failure_and_jobs_are_theirs_alone(server, keys, phantom):
    alice, bob = RemoteEngine(server.url, api_key=keys[1]["alice"]), keys[1]["bob"]
    bad = kidney_request(phantom, key_slice=phantom[0].array.shape[0] + 1, slice_range=None)
    results = {}
    thread = threading.Thread(target=lambda: results.update(good=alice.run(kidney_request(phantom)).mask))
    thread.start()
    with pytest.raises(PromptError):
        RemoteEngine(server.url, api_key=bob).run(bad)
    thread.join(600)
    assert results["good"].any()
    job_id = [line.split()[2] for line in server.log().splitlines() if " from alice done in " in line][-1]
    for method in ("GET", "DELETE"):
        answer = requests.request(method, f"{server.url}/v1/jobs/{job_id}", headers=headers(bob), timeout=30)
        assert answer.status_code == 404 and answer.json() == {"error": f"job {job_id} is not on this server", "type": "JobMissing"}
    assert requests.get(f"{server.url}/v1/jobs/{job_id}", headers=headers(keys[1]["alice"]), timeout=30).json()["status"] == "done"


def upload(server, key, digest, blob) -> requests.Response:
    ticket = requests.post(f"{server.url}/v1/uploads", json={"volume": digest, "size": len(blob)}, headers=headers(key), timeout=30)
    assert ticket.status_code == 201, ticket.text
    upload_id = ticket.json()["upload"]
    part = requests.put(f"{server.url}/v1/uploads/{upload_id}/0", data=blob, headers=headers(key), timeout=30)
    assert part.status_code == 204, part.text
    return requests.post(f"{server.url}/v1/uploads/{upload_id}/complete", headers=headers(key), timeout=60)


def test_damaged_uploads_are_refused_and_nothing_is_stored(server, keys, phantom):
    key = keys[1]["alice"]
    volume = phantom[0]
    changed = type(volume)(volume.array[::-1].copy(), volume.geometry, volume.modality)
    digest, blob = wire.encode_volume(changed)
    cases = {
        "truncated": (digest, blob[: len(blob) - 1000], "truncated or damaged"),
        "corrupt": (digest, blob[:-2000] + bytes(2000), "truncated or damaged"),
        "digest mismatch": ("1" * 64, blob, "not 111111111111... as it was sent"),
    }
    for name, (sent_digest, data, message) in cases.items():
        answer = upload(server, key, sent_digest, data)
        assert answer.status_code == 422, (name, answer.text)
        assert answer.json()["type"] == "CorruptData" and message in answer.json()["error"], (name, answer.text)
        assert requests.get(f"{server.url}/v1/volumes/{sent_digest}", headers=headers(key), timeout=30).status_code == 404, name


def test_malformed_oversized_and_foreign_requests_get_their_status(server, keys):
    key = keys[1]["alice"]
    job = f"{server.url}/v1/jobs/{'a' * 32}"
    malformed = requests.put(job, data=b"{not json", headers=headers(key, **{"Content-Type": "application/json"}), timeout=30)
    assert malformed.status_code == 422 and malformed.json()["error"].startswith("invalid request:")
    wrong_field = requests.put(job, json={"volume": "abc", "view": "diagonal"}, headers=headers(key), timeout=30)
    assert wrong_field.status_code == 422 and "volume" in wrong_field.json()["error"]
    too_big = requests.put(job, data=b" " * (65 << 20), headers=headers(key, **{"Content-Type": "application/json"}), timeout=60)
    assert too_big.status_code == 413 and too_big.json()["type"] == "TooLarge"
    chunks = iter([b" " * (1 << 20)] * 70)
    chunked = requests.put(job, data=chunks, headers=headers(key, **{"Content-Type": "application/json"}), timeout=60)
    assert chunked.status_code == 413
    part = requests.put(f"{server.url}/v1/uploads/{'b' * 32}/0", data=b"x" * (9 << 20), headers=headers(key), timeout=60)
    assert part.status_code == 413
    unknown = requests.put(f"{server.url}/v1/uploads/{'b' * 32}/0", data=b"x", headers=headers(key), timeout=30)
    assert unknown.status_code == 404 and unknown.json()["type"] == "UnknownUpload"
    for sent, upgrade in ((str(wire.API_VERSION + 1), "upgrade the server"), (str(wire.API_VERSION - 1), "upgrade the client")):
        answer = requests.get(f"{server.url}/v1/info", headers={**headers(key), wire.API_VERSION_HEADER: sent}, timeout=30)
        assert answer.status_code == 426 and upgrade in answer.json()["error"]
    unauthorised = requests.get(f"{server.url}/v1/info", timeout=30)
    assert unauthorised.status_code == 401 and unauthorised.headers["WWW-Authenticate"] == "Bearer"
    assert unauthorised.json() == {"error": "missing or unknown API key", "type": "AuthenticationError"}
    assert requests.get(f"{server.url}/health", timeout=30).json()["api_version"] == wire.API_VERSION


def test_keys_are_stored_hashed_and_never_logged(server, keys):
    path, issued = keys
    text = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for name, key in issued.items():
        assert key not in text and f"{name} sha256:" in text
        assert key not in server.log()
    info = requests.get(f"{server.url}/v1/info", headers=headers(issued["alice"]), timeout=30)
    assert issued["alice"] not in json.dumps(info.json())


def test_keys_added_or_revoked_while_https_serves_apply_at_once(tmp_path):
    """The server's own TLS (--tls-cert/--tls-key), and a key file edited while it runs."""
    key_file = tmp_path / "keys"
    first = add_key(key_file, "first")
    certificate, private_key = self_signed_certificate(tmp_path)
    options = ("--no-agent", "--tls-cert", str(certificate), "--tls-key", str(private_key))
    server = ServerProcess(tmp_path, tmp_path / "store", *options, keys=key_file)
    assert server.url.startswith("https://")
    try:
        server.start()

        def status(key):
            return requests.get(f"{server.url}/v1/info", headers=headers(key), verify=str(certificate), timeout=30).status_code

        assert status(first) == 200
        second = add_key(key_file, "second")
        assert status(second) == 200
        key_file.write_text("".join(line for line in key_file.read_text().splitlines(keepends=True) if not line.startswith("first ")))
        assert (status(first), status(second)) == (401, 200)
        key_file.write_text("")
        assert status(second) == 401
    finally:
        server.stop()
    assert "API keys reloaded" in server.log() and first not in server.log() and second not in server.log()
