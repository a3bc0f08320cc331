"""The agent's record of the module's last run, kept whether the run succeeded, failed or
was cancelled: the lines the widget lists (one per agent run, one per turn with its
picture) and the record folder it saves (`agent.records.write_records`)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from MedSAMAgentLib.agent.records import AgentRecord, failure_outcome, write_records
from MedSAMAgentLib.engine.interface import SegmentationOutcome
from MedSAMAgentLib.errors import MedSAMAgentError, OutputError


@dataclass(frozen=True)
class RecordLine:
    """One line of the widget's list: a run's header, or one of its turns."""

    text: str
    tooltip: str = ""
    picture_png: bytes = b""


@dataclass
class LastRunRecord:
    target: str
    records: list[AgentRecord]
    outcome: dict  # {"status": "done" | "failed" | "cancelled", "error": ..., ...}
    finished: float = field(default_factory=time.time)

    @classmethod
    def done(cls, target: str, outcome: SegmentationOutcome) -> LastRunRecord:
        summary = {"status": "done", "key_slice": outcome.key_slice, "corrections": list(outcome.corrections)}
        return cls(target, list(outcome.records), summary)

    @classmethod
    def failed(cls, target: str, error: MedSAMAgentError) -> LastRunRecord:
        return cls(target, list(error.records), failure_outcome(error))

    @classmethod
    def of_targets(cls, runs: list[LastRunRecord]) -> LastRunRecord:
        """Several targets' records as one (each run names its target): every agent run,
        and each target's own outcome; one target's record as it is."""
        if len(runs) == 1:
            return runs[0]
        statuses = {run.outcome["status"] for run in runs}
        status = "cancelled" if "cancelled" in statuses else "done" if statuses == {"done"} else "failed"
        outcome = {"status": status, "targets": {run.target: run.outcome for run in runs}}
        return cls("; ".join(run.target for run in runs), [record for run in runs for record in run.records], outcome)

    def lines(self) -> list[RecordLine]:
        """The key slice's run first, then the search and the reviews; each turn with its
        label, the Dice when the truth was known, and the model's raw answer as tooltip."""
        if not self.records:
            error = f" ({self.outcome['error']})" if "error" in self.outcome else ""
            return [RecordLine(f"{self.outcome['status']}: no agent turns in this run{error}")]
        lines = []
        several = len({record.description for record in self.records}) > 1
        for record in self.records:
            target = f"{record.description}, " if several else ""
            lines.append(RecordLine(f"{target}{record.role} slice {record.slice_index}: ended by {record.end_reason}", record.error))
            for turn in record.turns:
                dice = "" if turn.dice is None else f" (Dice {turn.dice:.3f})"
                note = f" ({turn.note})" if turn.note else ""
                lines.append(RecordLine(f"  {turn.number}: {turn.label}{dice}{note}", turn.text, turn.picture_png))
        return lines

    def save(self, parent: Path) -> Path:
        """Write the record into a new folder inside `parent`, named after the target and
        the time the run ended; returns that folder."""
        parent = Path(parent)
        if not parent.is_dir():
            raise OutputError(f"folder {parent} does not exist")
        slug = re.sub(r"[^a-z0-9]+", "-", self.target.lower()).strip("-") or "run"
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.finished))
        folder, number = parent / f"medsam-agent-{slug}-{stamp}", 1
        while folder.exists():
            number += 1
            folder = parent / f"medsam-agent-{slug}-{stamp}-{number}"
        return write_records(self.records, folder, {**self.outcome, "target": self.target})
