"""The slice loop's rules and its coordinate mapping, with scripted answers."""

from __future__ import annotations

import numpy as np
import pytest

from MedSAMAgentLib.agent.loop import (
    END_CANCELLED,
    END_INVALID,
    END_MAX_ACTIONS,
    END_POLICY_ERROR,
    END_STOP,
    END_STOP_BEFORE_ACTING,
    StartingMask,
    run_agent,
)
from MedSAMAgentLib.agent.protocol import FOLLOW_UP_TEXT, SYSTEM_PROMPT, first_turn_text, tool_call_text
from MedSAMAgentLib.agent.view import Letterbox
from MedSAMAgentLib.errors import AgentError, Cancelled
from Testing.fixtures.policies import ScriptedPolicy
from Testing.fixtures.segmenters import BoxFillSegmenter

STOP = tool_call_text("stop_action", {})


def box_call(grid):
    return tool_call_text("add_bbox", {"bbox_2d": list(grid)})


def point_call(grid, positive=True):
    return tool_call_text("add_point", {"point_2d": list(grid), "point_type": "positive" if positive else "negative"})


def expected_grid(shape, x, y):
    """The forward letterbox, written independently: fit the longer side to 512, centre."""
    height, width = shape
    scale = 512 / max(height, width)
    offset_x = (512 - round(width * scale)) // 2
    offset_y = (512 - round(height * scale)) // 2
    return round((x * scale + offset_x) / 512 * 1000), round((y * scale + offset_y) / 512 * 1000)


@pytest.mark.parametrize("shape", [(300, 180), (180, 300), (512, 512), (97, 311)])
def test_a_box_on_a_non_square_slice_lands_on_exactly_that_region(shape):
    image = np.zeros((*shape, 3), np.uint8)
    height, width = shape
    region = (width // 5, height // 3, width // 2, height - height // 4)  # x0, y0, x1, y1 in slice pixels
    grid = [*expected_grid(shape, region[0], region[1]), *expected_grid(shape, region[2], region[3])]
    segmenter = BoxFillSegmenter()
    trajectory = run_agent(image, "target", ScriptedPolicy([box_call(grid), STOP]), segmenter)
    assert trajectory.turns[0].prompts.box.as_list() == list(region)
    expected = np.zeros(shape, bool)
    expected[region[1] : region[3] + 1, region[0] : region[2] + 1] = True
    np.testing.assert_array_equal(trajectory.final_mask(), expected)
    assert trajectory.end_reason == END_STOP


def test_the_view_is_letterboxed_and_shows_the_mask_from_the_second_turn():
    image = np.full((200, 100, 3), 90, np.uint8)
    policy = ScriptedPolicy([box_call([400, 300, 600, 700]), STOP])
    run_agent(image, "left kidney", policy, BoxFillSegmenter())
    first, second = policy.observations
    first_view = np.asarray(first.view)
    assert first_view.shape == (512, 512, 3)
    assert (first_view[:, :100] == 0).all() and (first_view[:, 140:372] == 90).all()  # black padding left and right
    green = np.asarray(second.view)[300, 256]
    assert tuple(green) == (45, 172, 45)  # 0.5 * grey 90 + 0.5 * pure green
    assert first.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert first.messages[-1]["content"][1]["text"] == first_turn_text("left kidney")
    assert second.messages[-1]["content"][1]["text"] == FOLLOW_UP_TEXT
    assert second.messages[2] == {"role": "assistant", "content": box_call([400, 300, 600, 700])}
    assert second.messages[1]["content"][0]["image"] is first.view  # history shows what was seen then


def test_at_most_five_actions_and_five_turns_of_history():
    image = np.zeros((64, 64, 3), np.uint8)
    calls = [box_call([100, 100, 900, 900])] + [point_call([500, 500 + i]) for i in range(4)]
    policy = ScriptedPolicy(calls)
    trajectory = run_agent(image, "x", policy, BoxFillSegmenter())
    assert trajectory.actions == 5 and trajectory.end_reason == END_MAX_ACTIONS
    assert len(policy.observations) == 5
    assert len(policy.observations[-1].messages) == 1 + 2 * 4 + 1
    assert all(len(o.messages) <= 1 + 2 * 5 + 1 for o in policy.observations)


def test_history_keeps_the_last_five_turns():
    image = np.zeros((64, 64, 3), np.uint8)
    replies = ["no idea", box_call([100, 100, 900, 900]), "still no idea", point_call([500, 500])] + [point_call([400, 400 + i]) for i in range(3)]
    policy = ScriptedPolicy(replies)
    run_agent(image, "x", policy, BoxFillSegmenter())
    last = policy.observations[-1].messages
    assert len(last) == 1 + 2 * 5 + 1
    assert last[2]["content"] == box_call([100, 100, 900, 900])  # the oldest turn dropped, the box kept


def test_stop_on_the_first_turn_is_retried_once():
    image = np.zeros((64, 64, 3), np.uint8)
    trajectory = run_agent(image, "x", ScriptedPolicy([STOP, box_call([100, 100, 900, 900]), STOP]), BoxFillSegmenter())
    assert trajectory.end_reason == END_STOP and trajectory.actions == 1
    assert "asking again" in trajectory.turns[0].note
    twice = run_agent(image, "x", ScriptedPolicy([STOP, STOP]), BoxFillSegmenter())
    assert twice.end_reason == END_STOP_BEFORE_ACTING and not twice.final_mask().any()


def test_an_unparseable_answer_is_retried_once_then_the_loop_ends():
    image = np.zeros((64, 64, 3), np.uint8)
    recovered = run_agent(image, "x", ScriptedPolicy(["garbage", box_call([100, 100, 900, 900]), "garbage", STOP]), BoxFillSegmenter())
    assert recovered.end_reason == END_STOP and recovered.invalid_turns == 2 and recovered.actions == 1
    failed = run_agent(image, "x", ScriptedPolicy(["garbage", "more garbage"]), BoxFillSegmenter())
    assert failed.end_reason == END_INVALID and failed.invalid_turns == 2
    assert failed.turns[1].action.error == "no <tool_call> in the answer"


def test_a_box_on_the_padding_is_an_invalid_turn():
    image = np.zeros((100, 400, 3), np.uint8)  # wide: padding above and below
    trajectory = run_agent(image, "x", ScriptedPolicy([box_call([100, 5, 900, 60]), box_call([100, 400, 900, 600]), STOP]), BoxFillSegmenter())
    assert "lies on the padding" in trajectory.turns[0].action.error
    assert trajectory.actions == 1 and trajectory.end_reason == END_STOP


class RecordingSegmenter(BoxFillSegmenter):
    def __init__(self, uses_mask_input):
        super().__init__()
        self.uses_mask_input = uses_mask_input
        self.calls = []

    def predict_slice(self, image, prompts, previous_logits=None):
        self.calls.append((prompts, previous_logits))
        if prompts.box is None:
            mask = np.zeros(image.shape[:2], bool)
            for point in prompts.points:
                mask[int(point.y), int(point.x)] = point.positive
            from MedSAMAgentLib.segmenters.base import Prediction

            return Prediction(mask, mask.astype(np.float32), 1.0)
        return super().predict_slice(image, prompts, previous_logits)


def test_refinement_follows_the_protocol_for_each_kind_of_segmenter():
    image = np.zeros((100, 100, 3), np.uint8)
    script = [box_call([100, 100, 800, 800]), point_call([500, 500]), point_call([505, 500], positive=False), STOP]
    with_logits = RecordingSegmenter(uses_mask_input=True)
    run_agent(image, "x", ScriptedPolicy(list(script)), with_logits)
    box_call_prompts, first_logits = with_logits.calls[0]
    assert first_logits is None and box_call_prompts.points == ()
    click_prompts, logits = with_logits.calls[1]
    assert click_prompts.box is None and len(click_prompts.points) == 1 and logits is not None  # newest click + logits
    assert len(with_logits.calls[2][0].points) == 1 and with_logits.calls[2][0].points[0].positive is False

    without_logits = RecordingSegmenter(uses_mask_input=False)
    run_agent(image, "x", ScriptedPolicy(list(script)), without_logits)
    last_prompts, last_logits = without_logits.calls[-1]
    assert last_logits is None and last_prompts.box is not None
    # the negative click 2.56 px from the positive one replaced it
    assert [p.positive for p in last_prompts.points] == [False]


def test_a_review_starts_from_the_given_mask():
    image = np.zeros((80, 80, 3), np.uint8)
    given = np.zeros((80, 80), bool)
    given[20:40, 30:50] = True
    policy = ScriptedPolicy([STOP])
    trajectory = run_agent(image, "x", policy, BoxFillSegmenter(), starting=StartingMask(given))
    assert trajectory.end_reason == END_STOP and trajectory.actions == 0 and trajectory.turns[0].number == 0
    np.testing.assert_array_equal(trajectory.final_mask(), given)
    messages = policy.observations[0].messages
    assert messages[2]["content"].startswith("<tool_call>") and "add_bbox" in messages[2]["content"]
    assert messages[-1]["content"][1]["text"] == FOLLOW_UP_TEXT


def test_cancel_between_turns_ends_the_trajectory_as_cancelled():
    image = np.zeros((64, 64, 3), np.uint8)
    started = []
    asked = iter([False, False, True])  # before turn 1, after its answer, before turn 2
    with pytest.raises(Cancelled) as cancelled:
        run_agent(image, "x", ScriptedPolicy([box_call([100, 100, 900, 900])] * 5), BoxFillSegmenter(),
                  cancel=lambda: next(asked), started=started.append)
    trajectory = started[0]
    assert (trajectory.end_reason, trajectory.error) == (END_CANCELLED, str(cancelled.value))
    assert [turn.action.kind for turn in trajectory.turns] == ["box"] and trajectory.final_mask().any()


def test_a_policy_error_mid_loop_keeps_the_turns_so_far():
    """An endpoint that fails on the second turn: the error goes on to the caller, and the
    trajectory it interrupted holds the first turn, the end reason and the error's line."""
    image = np.zeros((64, 64, 3), np.uint8)

    def failing(observation):
        raise AgentError("agent endpoint http://x/v1 failed after 3 attempts: timed out")

    started = []
    with pytest.raises(AgentError, match="timed out"):
        run_agent(image, "x", ScriptedPolicy([box_call([100, 100, 900, 900]), failing]), BoxFillSegmenter(), started=started.append)
    trajectory = started[0]
    assert trajectory.end_reason == END_POLICY_ERROR and trajectory.error.endswith("failed after 3 attempts: timed out")
    assert [turn.number for turn in trajectory.turns] == [1] and trajectory.actions == 1
    assert trajectory.as_dict()["error"] == trajectory.error


def test_letterbox_round_trip_for_anisotropic_pixels():
    letterbox = Letterbox.fit((60, 200), pixel_spacing=(5.0, 0.7))  # a coronal slice of 5 mm CT
    assert (letterbox.content_height, letterbox.content_width) == (512, 239)  # 300 mm tall, 140 mm wide
    for x, y in ((0, 0), (199, 59), (100, 30)):
        gx, gy = letterbox.to_grid(x, y)
        back = letterbox.to_slice(gx, gy)
        assert abs(back[0] - x) <= 0.5 and abs(back[1] - y) <= 0.5
