"""Prompts on any slice, independent of any model: every prompted slice is a seed, a stretch
between two seeds is filled from both sides, the user's object is never dropped, and an
added prompt re-runs only the slices it can change."""

from __future__ import annotations

import numpy as np
import pytest

from MedSAMAgentLib.errors import PromptError
from MedSAMAgentLib.prompts import Box, SlicePrompts
from MedSAMAgentLib.propagation import VolumeRequest, segment_volume
from MedSAMAgentLib.segmenters.base import slice_frames
from Testing.fixtures.segmenters import BoxFillSegmenter, box_mask

LOW_BOX, HIGH_BOX = Box(10, 20, 40, 50), Box(60, 70, 90, 100)


@pytest.fixture
def frames(phantom):
    return slice_frames(phantom[0], "axial")


def two_seeds(**overrides) -> VolumeRequest:
    values = dict(key_slice=20, prompts=SlicePrompts(box=LOW_BOX), prompts_at={30: SlicePrompts(box=HIGH_BOX)})
    values.update(overrides)
    return VolumeRequest(**values)


def filled_from(stack: np.ndarray, frames, box: Box) -> list[int]:
    """The slices whose mask is exactly `box` filled."""
    expected = box_mask(frames.image_shape, SlicePrompts(box=box))
    return [index for index in range(len(stack)) if np.array_equal(stack[index], expected)]


def test_a_stretch_between_two_seeds_takes_each_half_from_the_nearer_seed(frames):
    segmenter = BoxFillSegmenter(reach=20)
    stack = segment_volume(segmenter, frames, two_seeds(seeded_components_only=False))
    assert filled_from(stack, frames, LOW_BOX) == [*range(0, 25)]  # down to the volume's start, and up to half-way
    assert filled_from(stack, frames, HIGH_BOX) == [*range(26, 48)]
    half_way = box_mask(frames.image_shape, SlicePrompts(box=LOW_BOX)) | box_mask(frames.image_shape, SlicePrompts(box=HIGH_BOX))
    np.testing.assert_array_equal(stack[25], half_way)


def test_where_the_nearer_seed_lost_the_object_the_other_fills_in(frames):
    segmenter = BoxFillSegmenter(reach_from={20: 1, 30: 20})  # the low seed's track loses the object after one slice
    stack = segment_volume(segmenter, frames, two_seeds(seeded_components_only=False))
    assert filled_from(stack, frames, LOW_BOX) == [19, 20, 21]
    assert filled_from(stack, frames, HIGH_BOX) == [*range(22, 48)]  # half-way: the union, the high seed's alone
    assert min(index for seed, index in segmenter.tracked_from if seed == 30) == 22  # past half-way only as far as needed


def test_where_the_tracks_say_how_sure_they_are_each_slice_takes_the_surer(frames):
    sure_low = {(20, index): 2.0 for index in range(21, 30)}
    sure_high = {(30, index): 1.0 for index in range(21, 30)}
    sure_high[(30, 22)] = 3.0  # the high seed's track is surer of slice 22, near the low seed
    segmenter = BoxFillSegmenter(reach=20, confidence={**sure_low, **sure_high})
    stack = segment_volume(segmenter, frames, two_seeds(seeded_components_only=False))
    assert filled_from(stack, frames, HIGH_BOX)[:2] == [22, 30]
    assert [index for index in filled_from(stack, frames, LOW_BOX) if 20 < index < 30] == [21, *range(23, 30)]


def test_a_later_prompt_wins_on_its_own_slice(frames):
    request = two_seeds(prompts_at={20: SlicePrompts(box=HIGH_BOX)})
    stack = segment_volume(BoxFillSegmenter(reach=1), frames, request)
    assert filled_from(stack, frames, HIGH_BOX) == [19, 20, 21]


def test_the_seeds_component_survives_a_larger_unrelated_one(frames):
    # Tracking from slice 20 finds the object on 20-21 and then, past a gap, something else
    # on 24-33: the larger component touches no seed and is dropped; the prompted one stays.
    segmenter = BoxFillSegmenter(presence={20, 21, *range(24, 34)})
    stack = segment_volume(segmenter, frames, VolumeRequest(20, SlicePrompts(box=LOW_BOX), slice_range=(15, 40)))
    assert filled_from(stack, frames, LOW_BOX) == [20, 21]
    assert not stack[22:].any()


def test_every_seed_keeps_its_own_component(frames):
    segmenter = BoxFillSegmenter(reach=1)
    stack = segment_volume(segmenter, frames, two_seeds())
    assert filled_from(stack, frames, LOW_BOX) == [19, 20, 21]
    assert filled_from(stack, frames, HIGH_BOX) == [29, 30, 31]


def test_an_added_prompt_reruns_only_the_slices_it_can_change(frames):
    first = segment_volume(BoxFillSegmenter(reach=3), frames, VolumeRequest(20, SlicePrompts(box=LOW_BOX)))
    assert filled_from(first, frames, LOW_BOX) == [*range(17, 24)]
    noise = np.random.default_rng(1).random(first.shape) > 0.5
    earlier = first.copy()
    earlier[5] = noise[5]  # a slice far below: must come back voxel for voxel
    earlier[40] = noise[40]  # beyond the new prompt, reached from it: replaced
    segmenter = BoxFillSegmenter(reach=3)
    update = VolumeRequest(33, SlicePrompts(box=HIGH_BOX), previous=earlier, settled=(20,))
    stack = segment_volume(segmenter, frames, update)
    np.testing.assert_array_equal(stack[:21], earlier[:21])  # below and on the settled seed: untouched
    assert filled_from(stack, frames, HIGH_BOX) == [*range(30, 37)]
    assert filled_from(stack, frames, LOW_BOX) == [*range(17, 24)]  # 21-32 filled from both sides
    assert not stack[37:].any()
    assert min(segmenter.tracked) == 20 and segmenter.tracked.count(19) == 0


def test_an_update_stops_at_locked_slices(frames):
    earlier = np.zeros((len(frames), *frames.image_shape), bool)
    earlier[10:20] = box_mask(frames.image_shape, SlicePrompts(box=LOW_BOX))
    drawn = box_mask(frames.image_shape, SlicePrompts(box=Box(20, 30, 35, 45)))
    segmenter = BoxFillSegmenter(reach=2)
    update = VolumeRequest(14, SlicePrompts(box=HIGH_BOX), locked={12: drawn, 16: drawn}, previous=earlier, settled=(18,))
    stack = segment_volume(segmenter, frames, update)
    assert sorted(set(segmenter.tracked)) == [12, 13, 14, 15, 16]
    np.testing.assert_array_equal(stack[:12], earlier[:12])
    np.testing.assert_array_equal(stack[17:], earlier[17:])
    assert filled_from(stack, frames, HIGH_BOX) == [14]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(prompts_at={60: SlicePrompts(box=HIGH_BOX)}), "the prompt on slice 60 is outside the volume"),
        (dict(slice_range=(15, 25)), "the prompt on slice 30 is outside the range 15 25"),
        (dict(prompts_at={30: SlicePrompts(box=Box(60, 70, 60, 100))}), "zero area"),
    ],
)
def test_bad_seeds_are_refused(frames, overrides, message):
    segmenter = BoxFillSegmenter()
    with pytest.raises(PromptError, match=message):
        segment_volume(segmenter, frames, two_seeds(**overrides))
    assert segmenter.tracked == []
