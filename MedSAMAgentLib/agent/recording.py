"""A trajectory as the engine's plain record: every turn, with a picture of what the model
saw and did (the view it answered, the resulting mask and the prompt drawn on it)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from ..metrics import dice
from ..montage import overlay
from .loop import Trajectory, Turn
from .records import AgentRecord, TurnRecord

MASK_COLOUR = (255, 200, 0)
MASK_ALPHA = 0.35
BOX_COLOUR = (0, 160, 255)


def record_of(trajectory: Trajectory, role: str, slice_index: int) -> AgentRecord:
    summary = trajectory.as_dict()
    turns = []
    for turn, data in zip(trajectory.turns, summary["turns"]):
        turns.append(
            TurnRecord(
                number=turn.number,
                text=turn.text,
                action=data["action"],
                prompt=data.get("pixel_prompt"),
                mask_pixels=data.get("mask_pixels"),
                score=data.get("segmenter_score"),
                configuration=turn.configuration,
                seconds=data["seconds"],
                note=turn.note,
                picture_png=_png(draw_turn(trajectory, turn)),
                dice=None if trajectory.truth is None or turn.mask is None else round(dice(turn.mask, trajectory.truth), 4),
            )
        )
    return AgentRecord(
        role=role,
        slice_index=int(slice_index),
        description=trajectory.description,
        end_reason=trajectory.end_reason,
        actions=trajectory.actions,
        invalid_turns=trajectory.invalid_turns,
        final_mask_pixels=summary["final_mask_pixels"],
        turns=turns,
        error=trajectory.error,
    )


def draw_turn(trajectory: Trajectory, turn: Turn) -> Image.Image:
    """The view the model answered, with the resulting mask and the prompt drawn on it."""
    letterbox = trajectory.letterbox
    picture = turn.view.copy()
    if turn.mask is not None:
        picture = Image.fromarray(overlay(np.asarray(picture), letterbox.mask(turn.mask), MASK_ALPHA, MASK_COLOUR))
    pen = ImageDraw.Draw(picture)
    to_view = letterbox.to_model
    if turn.prompts is not None:
        if turn.prompts.box is not None:
            box = turn.prompts.box
            pen.rectangle([*to_view(box.x0, box.y0), *to_view(box.x1, box.y1)], outline=BOX_COLOUR, width=2)
        for point in turn.prompts.points:
            x, y = to_view(point.x, point.y)
            colour = (0, 255, 0) if point.positive else (255, 0, 0)
            pen.ellipse([x - 5, y - 5, x + 5, y + 5], outline=colour, width=2)
    label = turn.action.kind if turn.action.valid else f"invalid: {turn.action.error}"
    pen.text((6, 4), f"turn {turn.number}: {label}"[:70], fill=(255, 255, 0))
    return picture


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
