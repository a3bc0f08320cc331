"""What the doctor found: sections of labelled lines, each marked when it is a problem."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Finding:
    label: str
    value: str
    problem: bool = False  # something that stops or slows a run, with what to do in `value`


@dataclass
class Section:
    title: str
    findings: list[Finding] = field(default_factory=list)

    def add(self, label: str, value: str, problem: bool = False) -> None:
        self.findings.append(Finding(label, value, problem))


def render(sections: list[Section]) -> str:
    """Plain text, one finding a line; problems are marked with '!' so they stand out."""
    width = max((len(finding.label) for section in sections for finding in section.findings), default=0)
    lines = []
    for section in sections:
        lines.append(section.title)
        for finding in section.findings:
            lines.append(f"{'!' if finding.problem else ' '} {finding.label.ljust(width)}  {finding.value}")
    problems = sum(finding.problem for section in sections for finding in section.findings)
    lines.append(f"{problems} problem{'s' if problems != 1 else ''} found" if problems else "no problem found")
    return "\n".join(lines)
