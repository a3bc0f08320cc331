"""What each row came to, and `DIR/results.csv`: one line per row (done, skipped or failed,
seconds, each segment's voxels and mL, the worker, the one-line error).

Lines are appended as rows finish, so a batch killed at any moment keeps the lines of the
rows it finished; at the end the file is rewritten whole, in the manifest's order. A
skipped row keeps the sizes an earlier run wrote for its output.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from ...io.atomic import replaced_atomically
from ..segment_job import WrittenSegment

RESULTS_FILE = "results.csv"
FIELDS = ("row", "image", "output", "status", "seconds", "segments", "voxels", "ml", "worker", "worker_peak_mb", "error")
DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclass
class RowResult:
    row: int
    image: str
    output: str  # relative to the output folder
    status: str
    seconds: float = 0.0
    segments: list[WrittenSegment] = field(default_factory=list)
    worker: str = ""
    worker_peak_mb: float = 0.0  # the worker process's peak resident memory once this row was done
    error: str = ""

    def line(self) -> dict[str, str]:
        return {
            "row": str(self.row),
            "image": self.image,
            "output": self.output,
            "status": self.status,
            "seconds": f"{self.seconds:.1f}",
            "segments": ";".join(segment.name for segment in self.segments),
            "voxels": ";".join(str(segment.voxels) for segment in self.segments),
            "ml": ";".join(f"{segment.millilitres:.2f}" for segment in self.segments),
            "worker": self.worker,
            "worker_peak_mb": f"{self.worker_peak_mb:.0f}" if self.worker_peak_mb else "",
            "error": " ".join(self.error.split()),  # one line, whatever the error said
        }


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def first_sentence(text: str) -> str:
    """The gist of a long message (a lost Ray actor's runs to a paragraph)."""
    return text.split(". ", 1)[0].rstrip(".")


def earlier_segments(folder: Path) -> dict[str, list[WrittenSegment]]:
    """The segments an earlier run wrote, by output name (from its results.csv, if any)."""
    path = Path(folder) / RESULTS_FILE
    if not path.is_file():
        return {}
    found = {}
    with open(path, newline="") as handle:
        for line in csv.DictReader(handle):
            if line.get("status") not in (DONE, SKIPPED) or not line.get("segments"):
                continue
            try:
                found[line["output"]] = [WrittenSegment(name, int(voxels), float(ml)) for name, voxels, ml in
                                         zip(line["segments"].split(";"), line["voxels"].split(";"), line["ml"].split(";"))]
            except (KeyError, ValueError):  # a line cut short by a killed run
                continue
    return found


class ResultsFile:
    """`DIR/results.csv`, appended as rows finish and rewritten in order at the end."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / RESULTS_FILE
        self.results: dict[int, RowResult] = {}
        with replaced_atomically(self.path) as temp:
            with open(temp, "w", newline="") as handle:
                csv.DictWriter(handle, FIELDS).writeheader()

    def add(self, result: RowResult) -> None:
        self.results[result.row] = result
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, FIELDS).writerow(result.line())

    def finish(self) -> None:
        with replaced_atomically(self.path) as temp:
            with open(temp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, FIELDS)
                writer.writeheader()
                for row in sorted(self.results):
                    writer.writerow(self.results[row].line())

    def counts(self) -> dict[str, int]:
        statuses = [result.status for result in self.results.values()]
        return {status: statuses.count(status) for status in (DONE, SKIPPED, FAILED)}
