"""The propagation rules, independent of any model: stopping, ranges, union, largest
component, locked slices, cancellation."""

from __future__ import annotations

import numpy as np
import pytest

from MedSAMAgentLib.errors import Cancelled, MedSAMAgentError, PromptError
from MedSAMAgentLib.prompts import Box, SlicePrompts
from MedSAMAgentLib.propagation import VolumeRequest, seeded_components, segment_volume
from MedSAMAgentLib.segmenters.base import slice_frames
from Testing.fixtures.segmenters import BoxFillSegmenter

BOX = Box(10, 20, 40, 50)


@pytest.fixture
def frames(phantom):
    return slice_frames(phantom[0], "axial")


def request(**overrides) -> VolumeRequest:
    values = dict(key_slice=20, prompts=SlicePrompts(box=BOX))
    values.update(overrides)
    return VolumeRequest(**values)


def slices_with_object(stack: np.ndarray) -> list[int]:
    return np.flatnonzero(stack.any(axis=(1, 2))).tolist()


def test_stops_after_two_empty_slices_in_each_direction(frames):
    segmenter = BoxFillSegmenter(reach=3)
    stack = segment_volume(segmenter, frames, request())
    assert slices_with_object(stack) == list(range(17, 24))
    forward = [i for i in segmenter.tracked if i >= 20]
    backward = [i for i in segmenter.tracked if i < 20]
    assert max(forward) == 25 and min(backward) == 15  # two empty slices past each end, then stop


def test_range_is_covered_whole_even_across_gaps(frames):
    segmenter = BoxFillSegmenter(presence={20, 21, 25, 26, 30})
    stack = segment_volume(segmenter, frames, request(slice_range=(18, 32), seeded_components_only=False))
    assert slices_with_object(stack) == [20, 21, 25, 26, 30]
    assert sorted(set(segmenter.tracked)) == list(range(18, 33))


def test_largest_component_drops_disconnected_pieces(frames):
    segmenter = BoxFillSegmenter(presence={20, 21, 22, 27})
    stack = segment_volume(segmenter, frames, request(slice_range=(15, 30)))
    assert slices_with_object(stack) == [20, 21, 22]


def test_locked_slices_are_kept_voxel_for_voxel_and_extend_the_search(frames):
    rng = np.random.default_rng(0)
    edited = rng.random(frames.image_shape) > 0.7  # scattered voxels: the largest-component step must not touch them
    erased = np.zeros(frames.image_shape, bool)
    segmenter = BoxFillSegmenter(presence={19, 20, 21})
    stack = segment_volume(segmenter, frames, request(locked={21: erased, 30: edited}))
    np.testing.assert_array_equal(stack[30], edited)
    np.testing.assert_array_equal(stack[21], erased)
    assert max(segmenter.tracked) >= 30  # did not stop at the gap before the locked slice


def test_key_slice_edited_by_the_user_is_the_seed(frames):
    drawn = np.zeros(frames.image_shape, bool)
    drawn[60:70, 80:95] = True
    stack = segment_volume(BoxFillSegmenter(reach=1), frames, request(locked={20: drawn}))
    np.testing.assert_array_equal(stack[20], drawn)
    np.testing.assert_array_equal(stack[21], drawn)  # tracked from the user's mask, not from the box


def test_empty_key_slice_result_is_an_error(frames):
    segmenter = BoxFillSegmenter(presence=set())
    empty = np.zeros(frames.image_shape, bool)
    with pytest.raises(MedSAMAgentError, match="found nothing for the prompt on slice 20"):
        segment_volume(segmenter, frames, request(prompts=None, key_mask=empty))
    with pytest.raises(MedSAMAgentError, match="found nothing for the prompt on slice 20"):
        segment_volume(segmenter, frames, request())


def test_cancel_stops_between_slices(frames):
    segmenter = BoxFillSegmenter(reach=10)
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        segment_volume(segmenter, frames, request(), cancel=cancel)
    assert len(segmenter.tracked) == 4


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(key_slice=48), "slice 48 is outside the volume"),
        (dict(slice_range=(30, 10)), "range 30 10 is inverted"),
        (dict(slice_range=(0, 48)), "outside the volume"),
        (dict(slice_range=(25, 30)), "key slice 20 is outside the range 25 30"),
        (dict(prompts=SlicePrompts(box=Box(10, 20, 10, 50))), "zero area"),
        (dict(prompts=SlicePrompts(box=Box(10, 20, 400, 50))), "outside the 192x160 slice"),
        (dict(prompts=None), "no prompt given"),
    ],
)
def test_bad_requests_are_refused(frames, overrides, message):
    with pytest.raises(PromptError, match=message):
        segment_volume(BoxFillSegmenter(), frames, request(**overrides))


def test_seeded_components_are_26_connected():
    stack = np.zeros((3, 5, 5), bool)
    stack[0, 0, 0] = stack[1, 1, 1] = stack[2, 2, 2] = True  # diagonal chain
    stack[0, 4, 4] = True
    kept = seeded_components(stack, [2])
    assert kept.sum() == 3 and not kept[0, 4, 4]
