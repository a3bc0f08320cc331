"""The agent's record: every turn of every agent run inside a job, as plain data that
travels (JSON, pictures as PNG) and can be written to a folder, whether the agent ran in
this process or on a server, and whether the run succeeded or failed."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..io.atomic import write_bytes_atomically

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
        values = dict(data)
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

    def as_json(self, with_pictures: bool = True) -> dict:
        data = asdict(self)
        data["turns"] = [turn.as_json(with_pictures) for turn in self.turns]
        return data

    @classmethod
    def from_json(cls, data: dict) -> AgentRecord:
        values = dict(data)
        values["turns"] = [TurnRecord.from_json(turn) for turn in values.get("turns", [])]
        return cls(**values)


def write_records(records: list[AgentRecord], folder: Path, outcome: dict) -> Path:
    """`trajectory.json` (every run and turn, and `outcome`: how the job ended) and one PNG
    per turn, each written to a temporary name and renamed into place."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for record in records:
        for turn in record.turns:
            if turn.picture_png:
                write_bytes_atomically(folder / picture_name(record, turn), turn.picture_png)
    document = {"outcome": outcome, "runs": [record.as_json(with_pictures=False) for record in records]}
    path = folder / "trajectory.json"
    write_bytes_atomically(path, json.dumps(document, indent=2).encode())
    return path


def picture_name(record: AgentRecord, turn: TurnRecord) -> str:
    return f"{record.role}_slice{record.slice_index:04d}_turn{turn.number:02d}.png"
