"""The MedSAM-Agent slice loop: one tool call per turn, a mask back after each.

Rules (those of the released model's inference, with its letterbox bug fixed):
- at most 5 actions; the conversation shows the system prompt, the last 5 turns and the
  current view (the letterboxed slice, with the current mask in green from turn 2 on);
- a stop before any action is retried once; an unparseable answer is retried once (the
  count restarts after a valid action), a second one in a row ends the loop;
- a box predicts with the previous low-resolution logits as mask input; a click predicts
  from the newest click plus those logits (segmenters without mask input get the box and
  all clicks instead); a click within 3 pixels of an earlier opposite click replaces it.

A loop that a policy error (an endpoint that fails, a model that never calls a tool) or a
cancel interrupts still ends its trajectory, with the end reason `policy_error` or
`cancelled` and the error's message, before the error goes on to the caller; callers that
pass `started` hold the trajectory from its first turn on, so nothing the loop did is lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..errors import Cancelled, MedSAMAgentError, PromptError
from ..progress import CancelCheck, check_cancel
from ..prompts import Box, Point, SlicePrompts
from ..segmenters.base import Segmenter
from .parsing import ParsedAction, parse_action
from .policies import Observation, Policy
from .protocol import (
    CLICK_REPLACE_RADIUS,
    FOLLOW_UP_TEXT,
    HISTORY_TURNS,
    MAX_ACTIONS,
    SYSTEM_PROMPT,
    first_turn_text,
    tool_call_text,
)
from .view import Letterbox

END_STOP = "stop_action"
END_MAX_ACTIONS = "max_actions"
END_INVALID = "invalid_output"
END_STOP_BEFORE_ACTING = "stop_before_acting"
END_POLICY_ERROR = "policy_error"
END_CANCELLED = "cancelled"


@dataclass
class Turn:
    """One model call: what it said, how it was read, what it changed."""

    number: int
    text: str
    action: ParsedAction
    view: Image.Image
    prompts: SlicePrompts | None = None
    mask: np.ndarray | None = None
    score: float | None = None
    configuration: str = ""  # which configuration of the segmenter made the mask, where it has several
    seconds: float = 0.0
    note: str = ""

    def as_dict(self) -> dict:
        data = {"turn": self.number, "model_text": self.text, "action": self.action.as_dict(), "seconds": round(self.seconds, 3)}
        if self.prompts is not None:
            data["pixel_prompt"] = {
                "box": None if self.prompts.box is None else self.prompts.box.as_list(),
                "points": [{"x": float(p.x), "y": float(p.y), "positive": p.positive} for p in self.prompts.points],
            }
        if self.mask is not None:
            data["mask_pixels"] = int(self.mask.sum())
        if self.score is not None:
            data["segmenter_score"] = round(self.score, 4)
        if self.configuration:
            data["segmenter_configuration"] = self.configuration
        if self.note:
            data["note"] = self.note
        return data


@dataclass
class Trajectory:
    description: str
    letterbox: Letterbox
    turns: list[Turn] = field(default_factory=list)
    end_reason: str = ""
    mask: np.ndarray | None = None
    logits: object = None
    score: float = 0.0
    error: str = ""  # what interrupted the loop (policy_error, cancelled)
    truth: np.ndarray | None = None  # the slice's ground truth, when known: Dice per turn in the record

    @property
    def actions(self) -> int:
        """Actions the policy took (not the opening box of a review, turn 0)."""
        return sum(1 for turn in self.turns if turn.number > 0 and turn.action.kind in ("box", "point"))

    @property
    def invalid_turns(self) -> int:
        return sum(1 for turn in self.turns if not turn.action.valid)

    def final_mask(self) -> np.ndarray:
        shape = (self.letterbox.slice_height, self.letterbox.slice_width)
        return self.mask if self.mask is not None else np.zeros(shape, bool)

    def as_dict(self) -> dict:
        return {
            "description": self.description,
            "end_reason": self.end_reason,
            **({"error": self.error} if self.error else {}),
            "actions": self.actions,
            "invalid_turns": self.invalid_turns,
            "final_mask_pixels": int(self.final_mask().sum()),
            "turns": [turn.as_dict() for turn in self.turns],
        }


class _Clicks:
    """Clicks since the last box, with the opposite-click replacement rule."""

    def __init__(self):
        self.points: list[Point] = []

    def add(self, point: Point) -> None:
        self.points = [
            p for p in self.points
            if p.positive == point.positive or np.hypot(p.x - point.x, p.y - point.y) >= CLICK_REPLACE_RADIUS
        ]
        self.points.append(point)


@dataclass(frozen=True)
class StartingMask:
    """Start a loop from an existing mask (a propagated one under review): the conversation
    opens with a box action around it, as if the agent had drawn it, and the mask shown."""

    mask: np.ndarray


def run_agent(
    image: np.ndarray,
    description: str,
    policy: Policy,
    segmenter: Segmenter,
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    starting: StartingMask | None = None,
    truth: np.ndarray | None = None,
    max_actions: int = MAX_ACTIONS,
    cancel: CancelCheck | None = None,
    started: Callable[[Trajectory], None] | None = None,
) -> Trajectory:
    """Run the agent on one (H, W, 3) uint8 slice; return the whole trajectory. `truth`
    goes to simulated policies and to the record (Dice per turn); `started` gets the
    trajectory before the first turn."""
    letterbox = Letterbox.fit(image.shape[:2], pixel_spacing)
    trajectory = Trajectory(description, letterbox, truth=None if truth is None else truth.astype(bool))
    if started is not None:
        started(trajectory)
    try:
        _loop(trajectory, image, policy, segmenter, starting, truth, max_actions, cancel)
    except MedSAMAgentError as error:
        trajectory.end_reason = END_CANCELLED if isinstance(error, Cancelled) else END_POLICY_ERROR
        trajectory.error = str(error)
        raise
    return trajectory


def _loop(trajectory: Trajectory, image, policy: Policy, segmenter: Segmenter, starting, truth, max_actions: int, cancel) -> None:
    letterbox, description = trajectory.letterbox, trajectory.description
    history: list[tuple[Image.Image, str, str]] = []  # (view, user text, assistant text) per past turn
    clicks = _Clicks()
    box: Box | None = None
    if starting is not None and starting.mask.any():
        box = Box.around(starting.mask)
        trajectory.mask = starting.mask.astype(bool)
        # the mask under review did not come from the segmenter: stand-in mask input
        trajectory.logits = segmenter.logits_from_mask(starting.mask) if segmenter.uses_mask_input else None
        grid = [*letterbox.to_grid(box.x0, box.y0), *letterbox.to_grid(box.x1, box.y1)]
        opening = tool_call_text("add_bbox", {"bbox_2d": grid})
        view = letterbox.image(image)
        history.append((view, first_turn_text(description), opening))
        trajectory.turns.append(
            Turn(0, opening, parse_action(opening), view, SlicePrompts(box=box), trajectory.mask, note="opening box around the mask under review")
        )
    policy.begin(description, truth)
    stop_retried = False
    invalid_in_a_row = 0
    number = 0
    while trajectory.actions < max_actions:
        check_cancel(cancel)
        number += 1
        view = letterbox.image(image, trajectory.mask if history else None)
        text = FOLLOW_UP_TEXT if history else first_turn_text(description)
        messages = build_messages(history[-HISTORY_TURNS:], view, text)
        started = time.perf_counter()
        reply = policy.respond(Observation(messages, view, letterbox, trajectory.mask, image, cancel))
        check_cancel(cancel)
        action = parse_action(reply)
        turn = Turn(number, reply, action, view)
        history.append((view, text, reply))
        trajectory.turns.append(turn)
        if not action.valid:
            invalid_in_a_row += 1
            turn.seconds = time.perf_counter() - started
            if invalid_in_a_row > 1:
                trajectory.end_reason = END_INVALID
                break
            turn.note = "invalid answer; asking again"
            continue
        invalid_in_a_row = 0
        if action.kind == "stop":
            turn.seconds = time.perf_counter() - started
            if trajectory.actions == 0 and trajectory.mask is None:
                if not stop_retried:
                    stop_retried = True
                    turn.note = "stop before any action; asking again"
                    continue
                trajectory.end_reason = END_STOP_BEFORE_ACTING
                break
            trajectory.end_reason = END_STOP
            break
        try:
            prompts, previous = _prompts(action, letterbox, clicks, box, trajectory, segmenter)
            prediction = segmenter.predict_slice(image, prompts, previous_logits=previous)
        except PromptError as error:  # a box or click on the letterbox padding, off the slice
            turn.action = ParsedAction("invalid", repairs=action.repairs, error=str(error))
            invalid_in_a_row += 1
            turn.seconds = time.perf_counter() - started
            if invalid_in_a_row > 1:
                trajectory.end_reason = END_INVALID
                break
            continue
        if action.kind == "box":
            box, clicks = prompts.box, _Clicks()
        trajectory.mask, trajectory.logits, trajectory.score = prediction.mask, prediction.logits, prediction.score
        turn.prompts, turn.mask, turn.score = prompts, prediction.mask, prediction.score
        turn.configuration = prediction.configuration
        turn.seconds = time.perf_counter() - started
    else:
        trajectory.end_reason = END_MAX_ACTIONS


def build_messages(history, view: Image.Image, text: str) -> list[dict]:
    """The chat as the model sees it: system prompt, past (view, text, answer) turns, current view."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for past_view, past_text, reply in history:
        messages.append({"role": "user", "content": [{"type": "image", "image": past_view}, {"type": "text", "text": past_text}]})
        messages.append({"role": "assistant", "content": reply})
    messages.append({"role": "user", "content": [{"type": "image", "image": view}, {"type": "text", "text": text}]})
    return messages


def _prompts(action: ParsedAction, letterbox: Letterbox, clicks: _Clicks, box: Box | None, trajectory: Trajectory, segmenter: Segmenter):
    """The segmenter call for an action: (prompts, previous logits or None)."""
    previous = trajectory.logits if segmenter.uses_mask_input else None
    if action.kind == "box":
        grid = action.box
        if not (letterbox.inside_content(grid[0], grid[1]) or letterbox.inside_content(grid[2], grid[3])):
            raise PromptError(f"bbox_2d {list(grid)} lies on the padding around the slice")
        new_box = letterbox.box_to_slice(grid)
        if new_box.x1 <= new_box.x0 or new_box.y1 <= new_box.y0:
            raise PromptError(f"bbox_2d {list(grid)} covers less than a pixel of the slice")
        return SlicePrompts(box=new_box), previous
    if not letterbox.inside_content(*action.point):
        raise PromptError(f"point_2d {list(action.point)} lies on the padding around the slice")
    point = letterbox.point_to_slice(action.point, action.positive)
    clicks.add(point)
    if previous is not None:
        return SlicePrompts(points=(point,)), previous
    return SlicePrompts(box=None if segmenter.uses_mask_input else box, points=tuple(clicks.points)), None
