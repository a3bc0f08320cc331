"""The policy interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..view import Letterbox


@dataclass
class Observation:
    """What a policy gets each turn: the chat as the model sees it (system prompt, last
    turns, current view and text), and, for policies that reason on pixels, the current
    mask and the letterbox that maps the 0-999 grid onto the slice."""

    messages: list[dict]
    view: Image.Image
    letterbox: Letterbox
    mask: np.ndarray | None
    slice_image: np.ndarray
    cancel: Callable[[], bool] | None = None  # long-running policies poll it to stop early


class Policy(ABC):
    name: str = ""

    def begin(self, description: str, truth: np.ndarray | None = None) -> None:
        """A new slice and target: forget per-trajectory state. `truth` (the slice's
        ground-truth mask, when known) is only for simulated policies."""

    @abstractmethod
    def respond(self, observation: Observation) -> str:
        """The model's answer text for this turn."""

    def describe(self) -> str:
        return self.name
