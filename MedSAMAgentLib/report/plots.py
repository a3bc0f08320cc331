"""The evaluation's plots, drawn with matplotlib (its object API, no global pyplot state)
as PNG bytes for embedding: the Dice distribution and the Dice after each round, by
description and policy, with the simulated clinician's rounds beside the policy's."""

from __future__ import annotations

import io

import numpy as np

from ..errors import MedSAMAgentError

CLINICIAN = "clinician"


def mean_round_curve(cases_rounds: list[list[float]], rounds: int) -> list[float]:
    """The mean Dice after round 1..`rounds` over the cases; a case that stopped earlier
    keeps its last Dice (it would not be edited further). Cases without a round are left out."""
    filled = [values + [values[-1]] * (rounds - len(values)) for values in cases_rounds if values]
    if not filled:
        return []
    return [float(np.mean([values[r] for values in filled])) for r in range(rounds)]


def dice_distribution(groups: dict[str, list[float]]) -> bytes:
    """A box per group (its cases' Dice) with every case drawn as a point."""
    labels = list(groups)
    figure = _figure(max(4.0, 1.6 * len(labels) + 1.5), 3.6)
    axes = figure.subplots()
    axes.boxplot([groups[label] for label in labels], showfliers=False, widths=0.5)
    spread = np.random.default_rng(0)
    for position, label in enumerate(labels, 1):
        values = groups[label]
        axes.scatter(position + spread.uniform(-0.12, 0.12, len(values)), values, s=14, alpha=0.7, zorder=3)
    axes.set_xticks(range(1, len(labels) + 1), [_wrapped(label) for label in labels], fontsize=8)
    axes.set_ylabel("Dice")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title("Dice per case", fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    return _png(figure)


def round_curves(curves: dict[str, list[float]], clinician: dict[str, list[float]]) -> bytes:
    """The mean Dice after each round, one colour per group: the policy's solid, the
    clinician's on the same slices dashed."""
    figure = _figure(6.4, 3.8)
    axes = figure.subplots()
    colours = {label: f"C{number % 10}" for number, label in enumerate(sorted(set(curves) | set(clinician)))}
    for label, values in curves.items():
        axes.plot(range(1, len(values) + 1), values, marker="o", color=colours[label], label=label)
    for label, values in clinician.items():
        axes.plot(range(1, len(values) + 1), values, marker="s", linestyle="--", color=colours[label], label=f"{label}: {CLINICIAN}")
    axes.set_xlabel("round (agent action)")
    axes.set_ylabel("mean Dice on the key slice")
    axes.set_ylim(-0.02, 1.02)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.grid(alpha=0.3)
    axes.set_title("Dice after each round", fontsize=10)
    if curves or clinician:
        axes.legend(fontsize=7, loc="lower right")
    return _png(figure)


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MedSAMAgentError("an evaluation's report draws plots with matplotlib: pip install 'medsam-agent-slicer[report]'") from None
    return Figure(figsize=(width, height), layout="constrained")


def _wrapped(label: str, width: int = 18) -> str:
    words, lines = label.split(), [""]
    for word in words:
        if lines[-1] and len(lines[-1]) + len(word) > width:
            lines.append("")
        lines[-1] = f"{lines[-1]} {word}".strip()
    return "\n".join(lines)


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
