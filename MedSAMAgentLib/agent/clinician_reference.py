"""The reference an evaluation compares a policy with: the simulated clinician on the same
key slice, round by round (the Dice after each of its actions)."""

from __future__ import annotations

import numpy as np

from ..metrics import dice
from ..segmenters.base import Segmenter
from .loop import Trajectory, run_agent


def round_dice(trajectory: Trajectory, truth: np.ndarray) -> list[float]:
    """The Dice against `truth` after each action of the trajectory (not a review's opening box)."""
    return [dice(turn.mask, truth) for turn in trajectory.turns if turn.mask is not None and turn.number > 0]


def clinician_round_dice(image: np.ndarray, truth: np.ndarray, description: str, segmenter: Segmenter,
                         pixel_spacing: tuple[float, float] = (1.0, 1.0)) -> list[float]:
    from .policies.clinician import ClinicianPolicy

    trajectory = run_agent(image, description, ClinicianPolicy(), segmenter, pixel_spacing, truth=truth)
    return round_dice(trajectory, truth)
