"""A hub mirror holding small models made offline under the released models' names, and a
folder of weights fetched from it with `models fetch --to`, as an offline machine gets it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from MedSAMAgentLib.weights import spec_named
from Testing.fixtures.hub_mirror import SilentEndpoint, hub_mirror
from Testing.fixtures.server import run_medsam_agent


@pytest.fixture(scope="session")
def mirror_root(tmp_path_factory, random_medsam2_checkpoint, tiny_qwen_dir) -> Path:
    """Repos laid out as on the hub: MedSAM2's file (random MedSAM2-shaped weights) and the
    agent's model folder (a tiny random Qwen3-VL)."""
    root = tmp_path_factory.mktemp("hub-mirror")
    medsam2, agent = spec_named("medsam2"), spec_named("agent")
    (root / medsam2.repo_id).mkdir(parents=True)
    shutil.copyfile(random_medsam2_checkpoint, root / medsam2.repo_id / medsam2.filename)
    shutil.copytree(tiny_qwen_dir, root / agent.repo_id)
    return root


@pytest.fixture(scope="session")
def mirror(mirror_root):
    """(endpoint URL, requests answered) of the mirror, running for the session."""
    with hub_mirror(mirror_root) as running:
        yield running


@pytest.fixture(scope="session")
def copied_models(tmp_path_factory, mirror) -> Path:
    """`models fetch medsam2 agent --to DIR` on a machine that reaches the mirror."""
    folder = tmp_path_factory.mktemp("copied-models")
    fetched = run_medsam_agent("models", "fetch", "medsam2", "agent", "--to", str(folder), **online(mirror[0], folder.parent / "home"))
    assert fetched.returncode == 0, fetched.stderr
    return folder


def online(endpoint: str, home: Path) -> dict[str, str]:
    """The environment of a machine whose hub is `endpoint`, with its own empty hub cache."""
    return {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": endpoint, "HF_HOME": str(home)}


def offline(home: Path) -> dict[str, str]:
    """A machine cut off from the hub, with its own (empty) hub cache."""
    return {"HF_HUB_OFFLINE": "1", "HF_HOME": str(home)}


@pytest.fixture
def silent_hub():
    """A hub that takes connections and never answers."""
    endpoint = SilentEndpoint()
    yield endpoint
    endpoint.close()
