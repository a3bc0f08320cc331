"""The agent's record: every turn of every agent run inside a job, as plain data that
travels (JSON, pictures as PNG) and can be written to a folder, whether the agent ran in
this process or on a server, and whether the run succeeded, failed or was cancelled.

A record folder holds `trajectory.json` (how the job ended, and an index of its runs) and
one sub-folder per agent run (`01_key_slice0035`, `02_search_slice0010`, ...) with the
run's `run.json` (every turn) and one PNG per turn. The folder is written whole, under a
temporary name, and renamed into place: a reader sees the old record or the new one.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import Cancelled, MedSAMAgentError, OutputError

KEY, SEARCH, REVIEW = "key", "search", "review"


@dataclass
class TurnRecord:
    """One model call: what it answered, how that was read, and what it did to the mask.
    `picture_png` is the view the model answered, with the resulting mask and the prompt
    drawn on it."""

    number: int
    text: str
    action: dict
    prompt: dict | None = None  # {"box": [x0, y0, x1, y1] | None, "points": [{x, y, positive}]}, slice pixels
    mask_pixels: int | None = None
    score: float | None = None
    seconds: float = 0.0
    note: str = ""
    picture_png: bytes = b""
    dice: float | None = None  # of the mask after this turn, when the slice's truth is known
    configuration: str = ""  # the segmenter's configuration that made the mask (MedSAM2: 1024 or 512 px)

    @property
    def kind(self) -> str:
        return self.action.get("kind", "invalid")

    @property
    def valid(self) -> bool:
        return self.kind != "invalid"

    @property
    def label(self) -> str:
        """'box', 'point', 'stop' or 'invalid: why'."""
        return self.kind if self.valid else f"invalid: {self.action.get('error', 'unreadable answer')}"

    def as_json(self, with_picture: bool = True) -> dict:
        data = asdict(self)
        data.pop("picture_png")
        if with_picture:
            data["picture_png"] = base64.b64encode(self.picture_png).decode("ascii")
        return data

    @classmethod
    def from_json(cls, data: dict) -> TurnRecord:
        values = _known_fields(cls, data)
        values["picture_png"] = base64.b64decode(values.get("picture_png") or b"")
        return cls(**values)


@dataclass
class AgentRecord:
    """One agent run on one slice: on the key slice, while searching for it, or reviewing a
    propagated slice."""

    role: str
    slice_index: int
    description: str
    end_reason: str
    actions: int
    invalid_turns: int
    final_mask_pixels: int
    turns: list[TurnRecord] = field(default_factory=list)
    error: str = ""  # what interrupted the run (end reasons policy_error, cancelled)

    def as_json(self, with_pictures: bool = True) -> dict:
        data = asdict(self)
        data["turns"] = [turn.as_json(with_pictures) for turn in self.turns]
        return data

    @classmethod
    def from_json(cls, data: dict) -> AgentRecord:
        values = _known_fields(cls, data)
        values["turns"] = [TurnRecord.from_json(turn) for turn in values.get("turns", [])]
        return cls(**values)


def _known_fields(record_type, data: dict) -> dict:
    """The fields this version knows: a record from a newer server or folder, with fields
    added since, still reads (the newer fields are left out)."""
    names = {item.name for item in fields(record_type)}
    return {key: value for key, value in data.items() if key in names}


RECORD_FILE = "trajectory.json"
RUN_FILE = "run.json"


def write_records(records: list[AgentRecord], folder: Path, outcome: dict) -> Path:
    """Write the record folder (see the module's docstring) and return it. `outcome` says
    how the job ended: {"status": "done" | "failed" | "cancelled", "error": line, ...}. An
    existing folder is replaced only when it is empty or holds an earlier record."""
    folder = Path(folder)
    if not folder.parent.is_dir():
        raise OutputError(f"folder {folder.parent} does not exist")
    check_record_folder(folder)
    staging = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        index = []
        for number, record in enumerate(records, 1):
            name = f"{number:02d}_{record.role}_slice{record.slice_index:04d}"
            (staging / name).mkdir()
            run = record.as_json(with_pictures=False)
            for turn, data in zip(record.turns, run["turns"]):
                if turn.picture_png:
                    data["picture"] = f"turn{turn.number:02d}.png"
                    (staging / name / data["picture"]).write_bytes(turn.picture_png)
            (staging / name / RUN_FILE).write_text(json.dumps(run, indent=2))
            summary = {key: run[key] for key in ("role", "slice_index", "end_reason", "error", "actions", "invalid_turns")}
            index.append({"folder": name, **summary, "turns": len(record.turns)})
        (staging / RECORD_FILE).write_text(json.dumps({"outcome": outcome, "runs": index}, indent=2))
        _replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def failure_outcome(error: MedSAMAgentError) -> dict:
    """How a job that raised `error` ended, for its record."""
    return {"status": "cancelled" if isinstance(error, Cancelled) else "failed", "error": str(error), "error_type": type(error).__name__}


def read_records(folder: Path) -> tuple[dict, list[AgentRecord]]:
    """(outcome, records) of a record folder, pictures included."""
    folder = Path(folder)
    try:
        document = json.loads((folder / RECORD_FILE).read_text())
        records = []
        for run in document["runs"]:
            data = json.loads((folder / run["folder"] / RUN_FILE).read_text())
            pictures = [turn.pop("picture", None) for turn in data["turns"]]
            record = AgentRecord.from_json(data)
            for turn, picture in zip(record.turns, pictures):
                if picture:
                    turn.picture_png = (folder / run["folder"] / picture).read_bytes()
            records.append(record)
        return document["outcome"], records
    except FileNotFoundError as error:
        raise MedSAMAgentError(f"{folder} is not a complete agent record: {Path(error.filename).name} is missing") from None
    except (ValueError, KeyError, TypeError) as error:
        raise MedSAMAgentError(f"{folder} holds an unreadable agent record ({error.__class__.__name__}: {error})") from None


def check_record_folder(folder: Path) -> None:
    """Refuse a folder that exists and holds anything but an earlier record."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} exists and is not a folder")
    if folder.is_dir() and not (folder / RECORD_FILE).is_file() and any(folder.iterdir()):
        raise OutputError(f"{folder} holds other files; give a new or empty folder for the agent's record")


def _replace_folder(staging: Path, folder: Path) -> None:
    if not folder.exists() or not any(folder.iterdir()):
        os.replace(staging, folder)  # a rename, also over an empty folder
        return
    previous = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(folder, previous)
    os.rename(staging, folder)
    shutil.rmtree(previous, ignore_errors=True)
