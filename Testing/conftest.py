"""Shared fixtures: real models (loaded once per session), real anatomy, synthetic volumes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the suite may reach a model hub


@pytest.fixture(scope="session", autouse=True)
def converted_model_cache(tmp_path_factory) -> Path:
    """Models converted for the fast runtime go to a folder of this session (subprocesses
    inherit it), never to the user's cache."""
    from MedSAMAgentLib.segmenters.runtimes.cache import CACHE_ENVIRONMENT_VARIABLE

    folder = tmp_path_factory.mktemp("converted_models")
    previous = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    os.environ[CACHE_ENVIRONMENT_VARIABLE] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop(CACHE_ENVIRONMENT_VARIABLE, None)
    else:
        os.environ[CACHE_ENVIRONMENT_VARIABLE] = previous


# Slices the session's LiteMedSAM has encoded, kept for later tests: the module, agent and
# server tests run the phantom's kidney slices again and again. 4 MB each, 1 GB at most.
SESSION_ENCODINGS = 256


@pytest.fixture(scope="session")
def litemedsam():
    from MedSAMAgentLib.segmenters.litemedsam import LiteMedSAM

    return LiteMedSAM(device="cpu", cache_size=SESSION_ENCODINGS)


@pytest.fixture(scope="session")
def litemedsam_torch():
    """The reference: plain PyTorch in f32."""
    from MedSAMAgentLib.segmenters.litemedsam import LiteMedSAM

    return LiteMedSAM(device="cpu", runtime="torch")


@pytest.fixture(scope="session")
def random_medsam2_checkpoint(tmp_path_factory) -> Path:
    """The real MedSAM2 architecture with random weights, saved in the released format."""
    import torch

    from MedSAMAgentLib.segmenters.medsam2 import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("medsam2") / "MedSAM2_random.pt"
    torch.save({"model": build_model().state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def medsam2(random_medsam2_checkpoint):
    from MedSAMAgentLib.segmenters.medsam2 import MedSAM2

    return MedSAM2(random_medsam2_checkpoint, device="cpu")


@pytest.fixture(scope="session")
def phantom():
    from MedSAMAgentLib.phantom import abdominal_phantom

    return abdominal_phantom()


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    """A real API key file with two users: (path, {name: key})."""
    from Testing.fixtures.server import add_key

    path = tmp_path_factory.mktemp("keys") / "keys.txt"
    return path, {name: add_key(path, name) for name in ("alice", "bob")}


@pytest.fixture(scope="session")
def server(tmp_path_factory, keys):
    """One real `medsam-agent serve` (prompts only, LiteMedSAM on CPU, two keys) for the
    tests that need no special start; stopped at the end of the session."""
    from Testing.fixtures.server import ServerProcess

    folder = tmp_path_factory.mktemp("server")
    with ServerProcess(folder, folder / "store", "--no-agent", keys=keys[0]) as running:
        yield running


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory) -> Path:
    """A tiny random Qwen3-VL with its tokenizer, chat template and processor, saved offline."""
    from Testing.fixtures.tiny_qwen3vl import build_tiny_qwen3vl

    return build_tiny_qwen3vl(tmp_path_factory.mktemp("tiny_qwen3vl"))
