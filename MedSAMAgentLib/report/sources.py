"""What a report shows, read from folders: an evaluation (`cases.csv` and each case's agent
record) or a single job's agent record (`segment --save-trajectory`, the Slicer module's
saved record)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..agent.records import RECORD_FILE, AgentRecord, read_records
from ..errors import MedSAMAgentError

CASES_FILE = "cases.csv"


@dataclass
class ReportCase:
    """One job: its evaluation row (empty for a job outside an evaluation) and its record."""

    number: int
    description: str
    policy: str
    source: str  # the folder it was read from
    outcome: dict
    records: list[AgentRecord]
    row: dict = field(default_factory=dict)

    @property
    def evaluated(self) -> bool:
        return bool(self.row)

    @property
    def dice(self) -> float | None:
        return float(self.row["dice"]) if self.evaluated else None

    @property
    def failed(self) -> bool:
        return self.outcome.get("status", "done") != "done" or bool(self.row.get("error"))

    @property
    def error(self) -> str:
        return self.row.get("error") or self.outcome.get("error", "")

    @property
    def key_record(self) -> AgentRecord | None:
        return next((record for record in self.records if record.role == "key"), None)

    def round_dice(self) -> list[float]:
        return _numbers(self.row.get("round_dice", ""))

    def clinician_round_dice(self) -> list[float]:
        return _numbers(self.row.get("clinician_round_dice", ""))


def read_cases(folders: list[Path]) -> list[ReportCase]:
    """Every case of every folder, in order."""
    cases = []
    for folder in folders:
        folder = Path(folder)
        if (folder / CASES_FILE).is_file():
            cases += _evaluation(folder)
        elif (folder / RECORD_FILE).is_file():
            outcome, records = read_records(folder)
            description = records[0].description if records else outcome.get("description", "")
            cases.append(ReportCase(len(cases) + 1, description, "", str(folder), outcome, records))
        else:
            raise MedSAMAgentError(f"{folder} holds neither an evaluation ({CASES_FILE}) nor an agent record ({RECORD_FILE})")
    return cases


def _evaluation(folder: Path) -> list[ReportCase]:
    with open(folder / CASES_FILE, newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"case", "description", "dice", "round_dice"} - set(rows[0] if rows else {})
    if missing:
        raise MedSAMAgentError(f"{folder / CASES_FILE} lacks the columns {', '.join(sorted(missing))}: not an evaluation's table")
    cases = []
    for row in rows:
        record = folder / row["record"] if row.get("record") else None
        outcome, records = read_records(record) if record is not None and record.exists() else ({}, [])
        cases.append(ReportCase(int(row["case"]), row["description"], row.get("policy", ""), str(folder), outcome, records, row))
    return cases


def _numbers(text: str) -> list[float]:
    values = [float(part) for part in text.split(";") if part.strip()]
    return [value for value in values if math.isfinite(value)]
