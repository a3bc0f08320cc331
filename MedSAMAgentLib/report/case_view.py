"""One case of the report as HTML: what the job was and how it ended, then each agent run
(the key slice's first and open, the search and the reviews folded), one figure per turn
with the prompt and the mask after it drawn on the slice, and the Dice when it is known."""

from __future__ import annotations

import base64
from html import escape

from ..agent.records import AgentRecord, TurnRecord
from .sources import ReportCase


def case_section(case: ReportCase, anchor: str) -> str:
    policy = f" &middot; {escape(case.policy)}" if case.policy else ""
    status = "failed" if case.failed else "done"
    facts = _facts(case)
    error = f'<p class="error">{escape(case.error)}</p>' if case.error else ""
    runs = "\n".join(_run(record, open_=record.role == "key") for record in _key_first(case.records))
    if not case.records:
        runs = '<p class="note">The agent left no record for this case (it failed before the agent ran).</p>'
    return (
        f'<section class="case {status}" id="{anchor}" data-case="{case.number}" data-policy="{escape(case.policy)}" '
        f'data-dice="{"" if case.dice is None else case.dice}">\n'
        f"<h2>Case {case.number}: {escape(case.description)}{policy}</h2>\n{facts}\n{error}\n{runs}\n</section>"
    )


def _facts(case: ReportCase) -> str:
    rows = []
    if case.evaluated:
        row = case.row
        rows += [("Dice", _number(case.dice), "case-dice"), ("IoU", row.get("iou", ""), ""),
                 ("surface Dice", row.get("nsd", ""), ""), ("HD95 (mm)", row.get("hd95", ""), ""),
                 ("actions", row.get("actions", ""), ""), ("reward", row.get("reward", ""), ""),
                 ("image", row.get("image", ""), "")]
    key = case.key_record
    if key is not None:
        rows += [("key slice", str(key.slice_index), "key-slice"), ("ended by", key.end_reason, "end-reason")]
    status = case.outcome.get("status") or ("failed" if case.failed else "done")
    rows.append(("outcome", status, "outcome"))
    cells = "".join(f'<tr><th>{escape(name)}</th><td class="{css}">{escape(str(value))}</td></tr>' for name, value, css in rows)
    return f'<table class="facts">{cells}</table>'


def _key_first(records: list[AgentRecord]) -> list[AgentRecord]:
    return sorted(records, key=lambda record: record.role != "key")


def _run(record: AgentRecord, open_: bool) -> str:
    title = f"{record.role} slice {record.slice_index}: turns {len(record.turns)}, actions {record.actions}, ended by {record.end_reason}"
    error = f'<p class="error">{escape(record.error)}</p>' if record.error else ""
    figures = "\n".join(_turn(turn) for turn in record.turns)
    return (
        f'<details class="run" data-role="{escape(record.role)}" data-slice="{record.slice_index}"{" open" if open_ else ""}>'
        f"<summary>{escape(title)}</summary>{error}<div class=\"turns\">\n{figures}\n</div></details>"
    )


def _turn(turn: TurnRecord) -> str:
    picture = ""
    if turn.picture_png:
        data = base64.b64encode(turn.picture_png).decode("ascii")
        picture = f'<img src="data:image/png;base64,{data}" alt="turn {turn.number}: {escape(turn.label)}">'
    details = [escape(turn.label)]
    if turn.dice is not None:
        details.append(f'Dice <span class="turn-dice">{_number(turn.dice)}</span>')
    if turn.mask_pixels is not None:
        details.append(f"{turn.mask_pixels} px")
    if turn.score is not None:
        details.append(f"score {turn.score:.3f}")
    note = f"<br><em>{escape(turn.note)}</em>" if turn.note else ""
    return (
        f'<figure class="turn" data-turn="{turn.number}" data-kind="{escape(turn.kind)}">{picture}'
        f"<figcaption>turn {turn.number}: {' &middot; '.join(details)}{note}"
        f"<details><summary>answer</summary><pre>{escape(turn.text)}</pre></details></figcaption></figure>"
    )


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
