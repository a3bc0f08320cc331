"""The scale-out configuration the README documents, run for real: nginx terminating TLS in
front of two server processes that share one store, routing by volume hash; the worker a
client was using is killed between its jobs, and the client carries on, without sending
its volume again."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from MedSAMAgentLib.remote import RemoteEngine
from Testing.fixtures.server import REPOSITORY, ServerProcess, free_port, kidney_request, self_signed_certificate

NGINX_EXAMPLE = REPOSITORY / "Resources" / "Server" / "nginx-medsam-agent.conf"


def nginx_configuration(example: str, folder: Path, port: int, workers: list[int], certificate: Path, key: Path) -> str:
    """The README's example, pointed at this test's ports, certificate and folders."""
    upstreams = "\n".join(f"    server 127.0.0.1:{worker} max_fails=1 fail_timeout=30s;" for worker in workers)
    documented = "".join(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=30s;\n" for port in (8766, 8767)).rstrip("\n")
    text = example.replace(documented, upstreams)
    text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
    text = text.replace("/etc/ssl/medsam-agent/server.crt", str(certificate)).replace("/etc/ssl/medsam-agent/server.key", str(key))
    assert upstreams in text and str(certificate) in text, "the README's nginx example no longer has the expected shape"
    return (f"pid {folder}/nginx.pid;\nerror_log {folder}/error.log;\nevents {{}}\n"
            f"http {{\n  access_log {folder}/access.log;\n  client_body_temp_path {folder}/body;\n  proxy_temp_path {folder}/proxy;\n"
            f"{text}\n}}\n")


@pytest.fixture
def nginx(tmp_path):
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(binary).exists(), "nginx is missing: run bash scripts/setup.sh --test"

    def start(workers: list[int]) -> tuple[str, Path]:
        port = free_port()
        certificate, key = self_signed_certificate(tmp_path)
        configuration = tmp_path / "nginx.conf"
        configuration.write_text(nginx_configuration(NGINX_EXAMPLE.read_text(), tmp_path, port, workers, certificate, key))
        process = subprocess.Popen([binary, "-c", str(configuration), "-p", str(tmp_path), "-g", "daemon off;"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append(process)
        for _ in range(100):
            try:
                requests.get(f"https://127.0.0.1:{port}/health", verify=str(certificate), timeout=1)
                return f"https://127.0.0.1:{port}", certificate
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"nginx did not start: {process.stderr.read().decode() if process.poll() is not None else ''}")

    started: list[subprocess.Popen] = []
    yield start
    for process in started:
        process.terminate()
        process.wait(10)


def test_two_workers_behind_tls_share_a_store_and_survive_a_lost_worker(tmp_path, keys, phantom, local_engine, nginx, monkeypatch):
    store = tmp_path / "shared-store"
    workers = [ServerProcess(tmp_path, store, "--no-agent", keys=keys[0]).start() for _ in range(2)]
    try:
        url, certificate = nginx([worker.port for worker in workers])
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate))
        remote = RemoteEngine(url, api_key=keys[1]["alice"])
        request = kidney_request(phantom)
        expected = local_engine.run(request).mask
        assert np.array_equal(remote.run(request).mask, expected)
        served = [worker for worker in workers if " from alice done in " in worker.log()]
        assert len(served) == 1 and served[0].uploads() == 1
        served[0].kill()
        other = next(worker for worker in workers if worker is not served[0])
        assert np.array_equal(remote.run(request).mask, expected)
        assert " from alice done in " in other.log() and other.uploads() == 0  # the shared store had the volume
        assert keys[1]["alice"] not in (tmp_path / "access.log").read_text() + other.log() + served[0].log()
    finally:
        for worker in workers:
            worker.stop()
