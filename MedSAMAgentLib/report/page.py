"""The whole report page: one HTML file with everything in it (pictures and plots as data
URLs, the style inline) and a content security policy that lets it load nothing else, so
it reads the same offline, attached to a mail or archived with a study."""

from __future__ import annotations

import base64
import html
import statistics

from .case_view import case_section
from .plots import dice_distribution, mean_round_curve, round_curves
from .sources import ReportCase

ROUNDS = 5  # the agent's action limit

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #1d1d1d; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
.case { border-top: 2px solid #888; margin-top: 1.5em; }
.case.failed h2 { color: #a01010; }
.error { color: #a01010; font-weight: 600; }
.note { color: #666; }
.turns { display: flex; flex-wrap: wrap; gap: 10px; }
figure.turn { margin: 0; width: 260px; font-size: 0.85em; }
figure.turn img { width: 256px; height: 256px; image-rendering: pixelated; border: 1px solid #444; }
pre { white-space: pre-wrap; word-break: break-all; font-size: 0.85em; }
img.plot { max-width: 100%; margin: 0.5em 1em 0.5em 0; }
details.run { margin: 0.6em 0; }
"""


def render(cases: list[ReportCase], sources: list[str]) -> str:
    evaluated = [case for case in cases if case.evaluated]
    origin = ", ".join(html.escape(source) for source in sources)
    body = [f'<h1>MedSAM-Agent report</h1>\n<p>From {origin}; cases: <span id="case-count">{len(cases)}</span>.</p>']
    if evaluated:
        body.append(evaluation_section(evaluated))
    body += [case_section(case, f"case-{index}") for index, case in enumerate(cases, 1)]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">\n"
        f"<title>MedSAM-Agent report</title>\n<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def evaluation_section(cases: list[ReportCase]) -> str:
    groups: dict[str, list[ReportCase]] = {}
    for case in cases:
        groups.setdefault(group_label(case), []).append(case)
    curves = {label: mean_round_curve([c.round_dice() for c in members], ROUNDS) for label, members in groups.items()}
    clinician = {label: mean_round_curve([c.clinician_round_dice() for c in members], ROUNDS) for label, members in groups.items()}
    curves = {label: values for label, values in curves.items() if values}
    clinician = {label: values for label, values in clinician.items() if values}
    summary_rows = "".join(
        f'<tr data-group="{html.escape(label)}"><td>{html.escape(label)}</td><td class="cases">{len(members)}</td>'
        f'<td class="errors">{sum(1 for c in members if c.failed)}</td>'
        f'<td class="mean-dice">{statistics.fmean(c.dice for c in members):.4f}</td>'
        f'<td class="median-dice">{statistics.median(c.dice for c in members):.4f}</td></tr>'
        for label, members in groups.items()
    )
    round_rows = "".join(_round_row(label, "policy", values) for label, values in curves.items())
    round_rows += "".join(_round_row(label, "clinician", values) for label, values in clinician.items())
    header = "".join(f"<th>round {r}</th>" for r in range(1, ROUNDS + 1))
    distribution = _plot(dice_distribution({label: [c.dice for c in members] for label, members in groups.items()}),
                         "dice-distribution", "Dice per case, by description and policy")
    rounds = _plot(round_curves(curves, clinician), "round-dice", "Mean Dice after each round, the policy's and the clinician's")
    return (
        '<section id="evaluation"><h2>Evaluation</h2>\n'
        "<table id=\"summary\"><tr><th>description &middot; policy</th><th>cases</th><th>failed</th><th>mean Dice</th>"
        f"<th>median Dice</th></tr>{summary_rows}</table>\n{distribution}{rounds}\n"
        "<p>Mean Dice on the key slice after each round (a case that stopped keeps its last Dice); "
        "the simulated clinician worked on the same key slices.</p>\n"
        f'<table id="rounds"><tr><th>description &middot; policy</th><th>who</th>{header}</tr>{round_rows}</table>\n</section>'
    )


def group_label(case: ReportCase) -> str:
    return f"{case.description} · {case.policy}" if case.policy else case.description


def _round_row(label: str, who: str, values: list[float]) -> str:
    cells = "".join(f"<td>{value:.4f}</td>" for value in values)
    return f'<tr class="{who}" data-group="{html.escape(label)}"><td>{html.escape(label)}</td><td>{who}</td>{cells}</tr>'


def _plot(png: bytes, identifier: str, title: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    title = html.escape(title)
    return f'<img class="plot" id="{identifier}" alt="{title}" title="{title}" src="data:image/png;base64,{data}">'
