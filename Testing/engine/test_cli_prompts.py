"""Prompts on any slice from the command line: which slice each option's prompt lies on, how
prompts on one slice combine, which slice is the key slice, and a RAS box across slices as
the object's extent."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from MedSAMAgentLib import cli
from MedSAMAgentLib.cli.prompt_options import prompts_from_args
from MedSAMAgentLib.orientation import SlicePlane
from MedSAMAgentLib.prompts import Box, SlicePrompts, box_from_index, point_from_index

KEY = 17  # the phantom's right kidney is largest on axial slice 17 (it spans 7 to 28)


def given(volume, *arguments: str):
    args = cli.build_parser().parse_args(["segment", "ct.nrrd", "-o", "out.seg.nrrd", *arguments])
    plane = SlicePlane.for_view(volume.geometry, args.axis)
    return prompts_from_args(args, volume, plane), plane


def ras(volume, i: float, j: float, k: float) -> list[str]:
    return [str(v) for v in (volume.geometry.ijk_to_ras() @ [i, j, k, 1.0])[:3]]


def test_on_one_slice_a_later_box_replaces_an_earlier_one_and_points_add_up(phantom):
    volume = phantom[0]
    placed, plane = given(volume, "--slice", str(KEY), "--box", "10", "10", "50", "50", "--point", "20", "20", "pos",
                          "--box-at", "20", "5", "5", "30", "30", "--box-at", str(KEY), "12", "12", "60", "60",
                          "--point-at", str(KEY), "30", "30", "neg")
    assert placed.key_slice == KEY and placed.slice_range is None
    assert placed.prompts == SlicePrompts(box_from_index(plane, 12, 12, 60, 60),
                                          (point_from_index(plane, 20, 20, True), point_from_index(plane, 30, 30, False)))
    assert placed.prompts_at == {20: SlicePrompts(box_from_index(plane, 5, 5, 30, 30))}


def test_without_slice_the_key_slice_is_the_first_prompt_given_and_points_in_ras_lie_where_they_are(phantom):
    volume = phantom[0]
    placed, plane = given(volume, "--point-ras", *ras(volume, 40, 50, 20), "pos", "--box-at", "15", "5", "5", "30", "30",
                          "--box-ras-at", *ras(volume, 10, 12, 24), *ras(volume, 40, 44, 24))
    assert placed.key_slice == 20
    assert placed.prompts == SlicePrompts(points=(point_from_index(plane, 40, 50, True),))
    assert placed.prompts_at == {15: SlicePrompts(box_from_index(plane, 5, 5, 30, 30)),
                                 24: SlicePrompts(box_from_index(plane, 10, 12, 40, 44))}


def test_a_ras_box_across_slices_gives_the_range_and_is_the_box_on_the_key_slice(phantom):
    volume = phantom[0]
    corners = [*ras(volume, 10, 12, KEY - 2), *ras(volume, 40, 44, KEY + 2)]
    box = box_from_index(SlicePlane.for_view(volume.geometry, "axial"), 10, 12, 40, 44)
    middle, _ = given(volume, "--box-ras", *corners)
    assert (middle.key_slice, middle.slice_range, middle.prompts, middle.prompts_at) == (KEY, (KEY - 2, KEY + 2), SlicePrompts(box), {})
    chosen, _ = given(volume, "--box-ras", *corners, "--slice", str(KEY + 2), "--range", str(KEY - 2), str(KEY + 2))
    assert (chosen.key_slice, chosen.slice_range, chosen.prompts) == (KEY + 2, (KEY - 2, KEY + 2), SlicePrompts(box))
    flat, _ = given(volume, "--box-ras", *ras(volume, 10, 12, KEY + 1), *ras(volume, 40, 44, KEY + 1))
    assert (flat.key_slice, flat.slice_range, flat.prompts) == (KEY + 1, None, SlicePrompts(box))


def test_a_ras_box_across_slices_segments_as_a_flat_box_over_that_range(tmp_path, phantom, litemedsam, monkeypatch, capsys):
    """The 3D box as a prompt: the object is followed over the box's slices whole, exactly as
    the same box on the key slice with --range."""
    from MedSAMAgentLib import segmenters

    monkeypatch.setattr(segmenters, "create_segmenter", lambda *args, **kwargs: litemedsam)
    volume, organs = phantom
    source = tmp_path / "ct.nrrd"
    sitk.WriteImage(volume.geometry.apply_to(sitk.GetImageFromArray(volume.array)), str(source))
    plane = SlicePlane.for_view(volume.geometry, "axial")
    box = Box.around(plane.to_display(organs["right kidney"])[KEY], 3)
    low, high = plane.pixel_to_index(box.y0, box.x0), plane.pixel_to_index(box.y1, box.x1)
    i0, i1 = sorted((low[0], high[0]))
    j0, j1 = sorted((low[1], high[1]))

    def run(name: str, *arguments: str) -> np.ndarray:
        output = tmp_path / f"{name}.nrrd"
        assert cli.main(["segment", str(source), "-o", str(output), *arguments]) == 0
        return plane.to_display(sitk.GetArrayFromImage(sitk.ReadImage(str(output))) > 0)

    across = run("across", "--box-ras", *ras(volume, i0, j0, KEY - 2), *ras(volume, i1, j1, KEY + 2))
    ranged = run("ranged", "--slice", str(KEY), "--box", *map(str, (i0, j0, i1, j1)), "--range", str(KEY - 2), str(KEY + 2))
    np.testing.assert_array_equal(across, ranged)
    assert np.flatnonzero(across.any(axis=(1, 2))).tolist() == list(range(KEY - 2, KEY + 3))
    assert f"5 axial slices ({KEY - 2} to {KEY + 2})" in capsys.readouterr().err  # where the user checks the ends
