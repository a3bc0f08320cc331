"""The simulated clinician with LiteMedSAM on real anatomy: the reference the model is
compared to. Floors are set a few points under the values measured on this machine."""

from __future__ import annotations

import numpy as np
import pytest

from MedSAMAgentLib.agent.loop import END_STOP, run_agent
from MedSAMAgentLib.agent.policies.clinician import ClinicianPolicy
from MedSAMAgentLib.io.volumes import read_volume
from MedSAMAgentLib.metrics import dice
from MedSAMAgentLib.segmenters.base import slice_frames
from Testing.fixtures.anatomy import ct_head, evenly_spaced_slices


@pytest.mark.parametrize("view, floor", [("axial", 0.68), ("coronal", 0.78)])
def test_clinician_reaches_the_floor_within_five_turns(litemedsam, view, floor):
    path, reference = ct_head()
    frames = slice_frames(read_volume(path), view, "brain")
    truth = frames.plane.to_display(reference)
    curves = []
    for index in evenly_spaced_slices(truth, 5):
        trajectory = run_agent(frames[index], "brain in head CT", ClinicianPolicy(), litemedsam, frames.pixel_spacing, truth=truth[index])
        assert trajectory.actions <= 5 and trajectory.invalid_turns == 0
        assert trajectory.end_reason in (END_STOP, "max_actions")
        curves.append([dice(turn.mask, truth[index]) for turn in trajectory.turns if turn.mask is not None])
    print(f"per-round Dice, CT head {view}:", [[round(v, 3) for v in curve] for curve in curves])
    assert np.mean([curve[-1] for curve in curves]) >= floor


def test_clinician_clicks_where_the_error_is_largest():
    from MedSAMAgentLib.agent.parsing import parse_action
    from MedSAMAgentLib.agent.policies.base import Observation
    from MedSAMAgentLib.agent.view import Letterbox

    truth = np.zeros((100, 100), bool)
    truth[20:80, 20:80] = True
    current = truth.copy()
    current[40:60, 40:60] = False  # a hole in the middle: a positive click at its centre
    letterbox = Letterbox.fit(truth.shape)
    policy = ClinicianPolicy()
    policy.begin("square", truth)
    action = parse_action(policy.respond(Observation([], None, letterbox, current, None)))
    x, y = letterbox.to_slice(*action.point)
    assert action.positive and 48 <= x <= 51 and 48 <= y <= 51
    extra = truth.copy()
    extra[5:15, 30:70] = True  # a false band above: a negative click inside it, after a real gain
    action = parse_action(policy.respond(Observation([], None, letterbox, extra, None)))
    x, y = letterbox.to_slice(*action.point)
    assert action.positive is False and 5 <= y <= 14
    action = parse_action(policy.respond(Observation([], None, letterbox, extra, None)))
    assert action.kind == "stop"  # no gain since the last turn
