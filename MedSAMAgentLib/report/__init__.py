"""The report: one self-contained HTML page showing what the agent did, from agent records
and evaluations (`medsam-agent report`, `medsam-agent eval --report`).

- `sources`: reads the folders (an evaluation's `cases.csv` and records, or one record);
- `plots`: the evaluation's plots (matplotlib);
- `case_view`, `page`: the HTML.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

REPORT_FILE = "report.html"


def write_report(folders: list[Path], output: Path) -> Path:
    """Read `folders` and write the page to `output` (to a temporary name, then renamed)."""
    from .page import render
    from .sources import read_cases

    cases = read_cases([Path(folder) for folder in folders])
    text = render(cases, [str(folder) for folder in folders])
    output = Path(output)
    temporary = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, output)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return output
