"""The thin client as a workstation installs it (`scripts/setup.sh --client`, here the
`.venv-client` that `setup.sh --test` makes): no torch, transformers or sam2, and
`medsam-agent segment --server` writes what a local run writes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import SimpleITK as sitk

from Testing.fixtures.server import CLIENT_PYTHON, REPOSITORY, environment, written_remotely_and_locally
from Testing.fixtures.server import run_thin_client as client

MODEL_PACKAGES = ("torch", "transformers", "sam2", "monai", "scipy")


def test_the_client_install_holds_no_model_packages():
    listed = subprocess.run([str(CLIENT_PYTHON), "-m", "pip", "list", "--format=freeze"], capture_output=True, encoding="utf-8", check=True)
    installed = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert "zstandard" in installed and "requests" in installed
    assert not installed & set(MODEL_PACKAGES), sorted(installed & set(MODEL_PACKAGES))


def test_importing_the_client_and_the_module_logic_loads_no_model_code():
    probe = ("import sys, MedSAMAgentLib.remote, MedSAMAgentLib.cli, MedSAMAgentLogic.segmentation_logic, MedSAMAgentLogic.dependencies; "
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {MODEL_PACKAGES!r}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, encoding="utf-8", errors="replace", check=True,
                          env=environment(PYTHONPATH=f"{REPOSITORY}:{REPOSITORY / 'MedSAMAgent'}"))
    assert done.stdout.strip() == "[]"


def test_segment_on_a_server_writes_what_a_local_run_writes(tmp_path, server, keys, phantom, litemedsam, monkeypatch):
    volume, organs = phantom
    source = tmp_path / "ct.nrrd"
    sitk.WriteImage(volume.geometry.apply_to(sitk.GetImageFromArray(volume.array)), str(source))
    kidney = np.argwhere(organs["right kidney"])
    key = int(np.median(kidney[:, 0]))
    low, high = kidney[:, 2:0:-1].min(axis=0) - 3, kidney[:, 2:0:-1].max(axis=0) + 3  # (i, j)
    arguments = [str(source), "--slice", str(key), "--box", *map(str, (*low, *high)), "--range", str(key - 2), str(key + 2)]

    remote, written = written_remotely_and_locally(tmp_path, arguments, server.url, keys[1]["bob"], litemedsam, monkeypatch)
    assert f"running on the server at {server.url}" in remote.stderr
    assert written["remote"].any() and np.array_equal(written["remote"], written["local"])

    refused = client("segment", *arguments, "-o", str(tmp_path / "refused.nrrd"), "--server", server.url, key="wrong")
    assert refused.returncode == 2 and not (tmp_path / "refused.nrrd").exists()
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: the server at {server.url} refused the API key: check $MEDSAM_AGENT_SERVER_KEY")
    here_only = client("segment", *arguments, "-o", str(tmp_path / "x.nrrd"), "--server", server.url, "--checkpoint", "w.pt")
    assert here_only.returncode == 2 and "with --server the server's models are used" in here_only.stderr
    local_without_models = client("segment", *arguments, "-o", str(tmp_path / "y.nrrd"))
    assert local_without_models.returncode == 2 and "--server" in local_without_models.stderr.strip().splitlines()[-1]
    assert keys[1]["bob"] not in remote.stderr + refused.stderr + server.log()
