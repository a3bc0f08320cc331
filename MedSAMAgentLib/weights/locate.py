"""Finding weights on this machine first, and going to the hub only when it can answer.

Weights are looked up, without any network call, in the folders named by
`$MEDSAM_AGENT_MODELS` (what `--from DIR` sets: folders laid out like the hub cache, as
`models fetch --to DIR` writes them), then in the hub cache itself. Only when a file is in
none of them is the hub asked, and only if it can answer: with `HF_HUB_OFFLINE=1`, or when
the hub's address gives no answer within a few seconds, the lookup fails at once with what
is missing and the command that fetches it (rather than the hub library's retries, which
kept an offline server waiting for minutes).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError
from .catalog import CATALOG

MODELS_FOLDER_ENV = "MEDSAM_AGENT_MODELS"
HUB_ANSWER_SECONDS = 3.0


class WeightsMissing(CheckpointError):
    """Weights that are neither on this machine nor obtainable from the hub now."""


@dataclass(frozen=True)
class HubState:
    usable: bool
    description: str  # "reachable at URL", "offline (HF_HUB_OFFLINE=1)", "unreachable at URL (reason)"


NOT_ASKED = HubState(False, "not asked (this server uses the weights on this machine only)")


def model_folders() -> list[Path]:
    """Where weights are looked up, in order: `$MEDSAM_AGENT_MODELS` (one folder or several,
    separated by the path separator), then the hub cache."""
    from huggingface_hub import constants

    given = [Path(part).expanduser() for part in os.environ.get(MODELS_FOLDER_ENV, "").split(os.pathsep) if part]
    return [*given, Path(constants.HF_HUB_CACHE)]


def hub_state() -> HubState:
    """Whether the hub can be asked now: not in offline mode, nor when its address gives no
    HTTP answer (any status counts) within `HUB_ANSWER_SECONDS`."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return HubState(False, "offline (HF_HUB_OFFLINE=1)")
    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=HUB_ANSWER_SECONDS).close()
    except urllib.error.HTTPError:
        pass  # an answer, if not a welcome one: the hub is there
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        text = str(reason) if str(reason) else reason.__class__.__name__
        if isinstance(reason, TimeoutError) or "timed out" in text:
            text = f"no answer in {HUB_ANSWER_SECONDS:g} s"
        return HubState(False, f"unreachable at {constants.ENDPOINT} ({text})")
    return HubState(True, f"reachable at {constants.ENDPOINT}")


def cached_file(repo_id: str, filename: str) -> Path | None:
    """The file from the first model folder that holds it; None when none does."""
    from huggingface_hub import try_to_load_from_cache

    for folder in model_folders():
        found = try_to_load_from_cache(repo_id, filename, cache_dir=folder)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def cached_snapshot(repo_id: str) -> Path | None:
    """The first complete copy of a transformers model folder (its config and every weight
    shard present) in the model folders; None when there is none."""
    for folder in model_folders():
        config = _cached_in(folder, repo_id, "config.json")
        if config is not None and not missing_weight_files(config.parent):
            return config.parent
    return None


def _cached_in(folder: Path, repo_id: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=folder)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def missing_weight_files(model_folder: Path) -> list[str]:
    """The weight files a transformers model folder lacks (its shard index names them)."""
    index = model_folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError):
            return [index.name + " (unreadable)"]
        return [shard for shard in shards if not (model_folder / shard).is_file()]
    if (model_folder / "model.safetensors").is_file() or (model_folder / "pytorch_model.bin").is_file():
        return []
    return ["model.safetensors"]


def hub_file(repo_id: str, filename: str, instead: str, download: bool = True) -> Path:
    """One file of a hub repo: from the model folders, else (with `download`) downloaded into
    the hub cache if the hub answers. `instead` names the option that gives a local file."""
    found = cached_file(repo_id, filename)
    if found is not None:
        return found
    state = hub_state() if download else NOT_ASKED
    if not state.usable:
        raise WeightsMissing(_missing(f"{filename} from {repo_id}", f"{repo_id}/{filename}", state, instead))
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename))
    except Exception as error:  # unknown repo or file, HTTP errors: all mean the same to the user
        raise CheckpointError(f"cannot get {filename} from the Hugging Face repo {repo_id} ({_reason(error)}); {instead}") from None


def hub_snapshot(repo_id: str, instead: str, download: bool = True) -> Path:
    """A whole model repo as a local folder: from the model folders, else (with `download`)
    downloaded into the hub cache if the hub answers."""
    found = cached_snapshot(repo_id)
    if found is not None:
        return found
    state = hub_state() if download else NOT_ASKED
    if not state.usable:
        raise WeightsMissing(_missing(f"the model {repo_id}", repo_id, state, instead))
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=repo_id))
    except Exception as error:
        raise CheckpointError(f"cannot get the model {repo_id} from the Hugging Face hub ({_reason(error)}); {instead}") from None


def fetch_name(reference: str) -> str:
    """What to pass to `models fetch` for a hub reference: the catalogue's name where it has one."""
    for spec in CATALOG:
        if spec.repo_id and reference in (spec.repo_id, f"{spec.repo_id}/{spec.filename}"):
            return spec.name
    return reference


def _missing(what: str, reference: str, state: HubState, instead: str) -> str:
    looked = ", ".join(str(folder) for folder in model_folders())
    return (f"{what} is not on this machine (looked in {looked}) and the hub is {state.description}: "
            f"on a machine with the hub, run `medsam-agent models fetch {fetch_name(reference)} --to DIR`, copy DIR here "
            f"and pass --from DIR (or set {MODELS_FOLDER_ENV}=DIR); or {instead}")


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{error.__class__.__name__}: {text[0]}" if text else error.__class__.__name__
