"""The pieces of box tracking, on exact synthetic slices: the grey-band cut, each slice's
evidence, and the end decided over the track."""

from __future__ import annotations

import math

import numpy as np
import pytest

from MedSAMAgentLib.segmenters.box_tracking import EndFinder, EvidenceWeights, ObjectFollower, TrackingRules


def grey_image(value: float, shape=(40, 40)) -> np.ndarray:
    return np.full((*shape, 3), value, np.uint8)


def square(top: int, size: int, shape=(40, 40)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[top : top + size, top : top + size] = True
    return mask


def graded_seed(background: float) -> np.ndarray:
    """A seed slice whose object, `square(10, 10)`, holds the grey levels 50 to 149: mean
    99.5, spread 28.9."""
    image = grey_image(background)
    image[..., 0][10:20, 10:20] = np.arange(100, dtype=np.uint8).reshape(10, 10) + 50
    return image


def test_the_next_box_is_the_neighbours_box_grown_by_the_margin():
    follower = ObjectFollower(TrackingRules(), grey_image(100), square(10, 10), seed_score=0.9)
    assert follower.next_box().as_list() == [7.0, 7.0, 22.0, 22.0]  # max(3 px, 10% of 9)
    follower.follow(square(12, 5))
    assert follower.next_box().as_list() == [9.0, 9.0, 19.0, 19.0]
    follower.follow(np.zeros((40, 40), bool))  # nothing found: the last mask still guides
    assert follower.next_box().as_list() == [9.0, 9.0, 19.0, 19.0]


def test_a_mask_is_kept_cut_to_the_seeds_grey_band_with_its_holes_filled():
    follower = ObjectFollower(TrackingRules(grey_band=2.0), graded_seed(40), square(10, 10), seed_score=0.9)
    image = grey_image(100)
    image[..., 0][:, 25:] = 30  # darker tissue: 69.5 grey levels from the seed's mean, 2.4 spreads
    image[..., 0][14, 14] = 255  # a bright speck inside the object: a hole, filled again
    spilled = square(10, 10)
    spilled[10:20, 20:30] = True
    kept = follower.kept(image, spilled)
    assert np.array_equal(kept, square(10, 10) | (spilled & (np.arange(40) < 25)))
    elsewhere = np.zeros((40, 40), bool)
    elsewhere[30:35, 30:35] = True  # wholly outside the band: kept whole rather than emptied
    assert np.array_equal(follower.kept(image, elsewhere), elsewhere)
    uncut = ObjectFollower(TrackingRules(grey_band=0.0), graded_seed(40), square(10, 10), seed_score=0.9)
    assert np.array_equal(uncut.kept(image, spilled), spilled)


def test_each_slice_is_measured_against_the_seed_and_its_neighbour():
    follower = ObjectFollower(TrackingRules(), graded_seed(100), square(10, 10), seed_score=0.8)
    image = grey_image(100)
    image[..., 0][10:20, 10:30] = 157  # 57.5 grey levels above the seed's mean: 1.99 spreads
    evidence = follower.measure(image, square(10, 10) | _right_half(), score=0.4)
    assert evidence.score_ratio == pytest.approx(math.log(0.5))
    assert evidence.grey_distance == pytest.approx(57.5 / np.arange(100).std())
    assert evidence.band_share == 1.0  # within 2.25 spreads
    assert evidence.overlap == pytest.approx(0.5)  # half the mask lies in the neighbour's
    assert evidence.found
    nothing = follower.measure(image, np.zeros((40, 40), bool), score=0.9)
    weights = EvidenceWeights(intercept=1, score_ratio=1, grey_distance=-1, band_share=1, overlap=1, empty=-3.5)
    assert not nothing.found and nothing.log_odds(weights) == -3.5
    expected = 1 + math.log(0.5) - 57.5 / np.arange(100).std() + 1 + 0.5
    assert evidence.log_odds(weights) == pytest.approx(expected)


def _right_half() -> np.ndarray:
    mask = np.zeros((40, 40), bool)
    mask[10:20, 20:30] = True
    return mask


def ends_for(log_odds: list[float], **rules) -> tuple[int | None, int]:
    """(the decided end, how many slices were needed to decide it)."""
    finder = EndFinder(TrackingRules(**rules))
    for count, value in enumerate(log_odds, 1):
        if (end := finder.add(value)) is not None:
            return end, count
    return None, len(log_odds)


def test_the_end_is_where_the_summed_evidence_peaks():
    assert ends_for([3, 3, 3, -3, -3], end_drop=4) == (3, 5)
    # One doubtful slice inside the object does not end it: the sum rises again past it.
    assert ends_for([3, -1, 3, 2, -3, -3], end_drop=4) == (4, 6)
    # Nothing but doubt from the seed on: no slice beyond it holds the object.
    assert ends_for([-2, -3], end_drop=4) == (0, 2)
    # Evidence hovering about nothing is followed at most `end_lookahead` slices past the peak.
    assert ends_for([2, 0.1, -0.1, 0.1, -0.1, 0.1, -0.2], end_drop=4, end_lookahead=4) == (2, 6)


def test_doubt_inside_the_object_does_not_end_it():
    """A slice whose evidence is near zero moves the end only when it is the object's last
    slice (it is then as likely in as out); inside the object the slices after it carry the
    sum on, where a threshold on each slice would stop."""
    before = ends_for([3, 2, 0.01, -3, -3], end_drop=4)
    after = ends_for([3, 2, -0.01, -3, -3], end_drop=4)
    assert before[0] - after[0] == 1  # the last slice was nearly nothing either way
    track = [3, 2, 0.01, 2, -3, -3]
    assert ends_for(track, end_drop=4)[0] == ends_for([3, 2, -0.01, 2, -3, -3], end_drop=4)[0] == 4
