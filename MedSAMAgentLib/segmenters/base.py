"""The interface every segmenter implements, and the lazy slice source they read.

Two operations:
- `predict_slice`: one 2D prediction on one slice from a box and/or clicks, optionally
  refining the previous prediction through its low-resolution logits (what the agent
  calls once per turn);
- `track`: walk the volume from a seed slice in one direction and yield a mask per slice
  (what 3D propagation consumes; the stopping rules live in `propagation`).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..intensity import Window, choose_window
from ..io.volumes import Volume
from ..orientation import SlicePlane
from ..prompts import SlicePrompts


@dataclass
class Prediction:
    """A 2D result: the binary mask at slice resolution, the model's low-resolution logits
    (to feed back as mask input on the next turn), the model's own quality score, and which
    configuration of the model made it (for the record; empty where a model has only one)."""

    mask: np.ndarray
    logits: object
    score: float
    configuration: str = ""


@dataclass(frozen=True)
class Seed:
    """Where tracking starts: a slice with either prompts or a finished mask."""

    slice_index: int
    prompts: SlicePrompts | None = None
    mask: np.ndarray | None = None

    def __post_init__(self):
        if (self.prompts is None) == (self.mask is None):
            raise ValueError("a seed has either prompts or a mask")


class SliceFrames:
    """Display-oriented RGB slices of one volume, windowed on demand (nothing is held
    beyond the volume itself, so memory does not grow with the number of slices)."""

    def __init__(self, volume_array: np.ndarray, plane: SlicePlane, window: Window):
        self.plane = plane
        self.window = window
        self._stack = plane.to_display(volume_array)

    def __len__(self) -> int:
        return self._stack.shape[0]

    def __getitem__(self, slice_index: int) -> np.ndarray:
        return self.window.to_rgb(self._stack[slice_index])

    @property
    def image_shape(self) -> tuple[int, int]:
        return self._stack.shape[1:]

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        return self.plane.pixel_spacing


class EncodingCache:
    """The image encoder's output for the last few slices, keyed by the slice's content
    (and how it was framed), so that an agent's turns on one slice and the propagation
    passes over it encode it once."""

    def __init__(self, size: int = 4):
        self.size = size
        self._entries: OrderedDict[bytes, object] = OrderedDict()

    @staticmethod
    def key(image: np.ndarray, *framing: float) -> bytes:
        """What identifies an encoding: the slice's content and how it was framed."""
        key = hashlib.blake2b(image.tobytes(), digest_size=16)
        key.update(np.asarray([*image.shape, *framing], dtype=np.float64).tobytes())
        return key.digest()

    def get(self, image: np.ndarray, encode: Callable[[], object], *framing: float) -> object:
        key = self.key(image, *framing)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = self._entries[key] = encode()
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()


def slice_frames(volume: Volume, view: str = "axial", window: str | Window | None = None, target: str | None = None) -> SliceFrames:
    """The volume's slices along `view`, windowed as asked (or as the modality and the
    target suggest)."""
    plane = SlicePlane.for_view(volume.geometry, view)
    if not isinstance(window, Window):
        window = choose_window(volume.array, volume.modality, window, target)
    return SliceFrames(volume.array, plane, window)


class Segmenter(ABC):
    """A promptable 2D segmenter that can also follow an object through a volume."""

    name: str = ""
    uses_mask_input: bool = True
    """Whether `predict_slice` refines through `previous_logits`; when False, a refining
    caller re-sends the box with all clicks so far instead of the newest click alone."""

    @abstractmethod
    def predict_slice(
        self,
        image: np.ndarray,
        prompts: SlicePrompts,
        previous_logits: object | None = None,
    ) -> Prediction:
        """One prediction on an (H, W, 3) uint8 slice; `previous_logits` (from an earlier
        Prediction on the same slice) is the mask input when `uses_mask_input`."""

    @abstractmethod
    def track(
        self,
        frames: SliceFrames,
        seed: Seed,
        locked: Mapping[int, np.ndarray],
        stop_index: int,
        continues: bool = False,
        conditioning: Sequence[Seed] = (),
    ) -> Iterator[tuple[int, np.ndarray, float | None]]:
        """Yield (slice index, mask, confidence) from the seed slice to `stop_index`
        inclusive, one slice at a time, in the direction of `stop_index`; the confidence is
        the log-odds that the mask is still the seed's object (None where the segmenter
        does not say). Locked slices are used as given masks (conditioning frames). `continues`: the object is known to go on to
        `stop_index` (the user's range, or another seed there), so no end is to be decided
        before it. `conditioning`: further seeds up to `stop_index`, which a video model
        conditions on. The caller may stop iterating at any slice."""

    def logits_from_mask(self, mask: np.ndarray) -> object:
        """Mask input standing for a binary slice mask that did not come from this model
        (a propagated or hand-drawn one), for segmenters with `uses_mask_input`."""
        raise NotImplementedError(f"{self.name} takes no mask input")
