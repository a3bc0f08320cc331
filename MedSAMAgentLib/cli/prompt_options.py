"""The prompts of `segment`: `--slice`, `--box`, `--point`, their `-at` forms for further
slices and their RAS forms.

Every prompt lies on one slice, and every prompted slice is a seed: `--box` and `--point`
on the key slice, `--box-at K` and `--point-at K` on slice K, `--box-ras-at` and
`--point-ras` on the slice their coordinates lie on, `--box-ras` on the slice it lies on,
or, when its corners lie on different slices, on the key slice, its extent across slices
giving the range (the object's ends). On one slice a later box replaces an earlier one and
points add up. The key slice is `--slice` when given, else the middle slice of a
`--box-ras` that spans several, else the slice of the first prompt given.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..errors import PromptError
from ..prompts import (
    Box,
    BoxAcross,
    Point,
    PromptsBySlice,
    SlicePrompts,
    box_from_index,
    box_from_ras,
    point_from_index,
    point_from_ras,
)

ORDER = "prompts_given"  # the namespace attribute that lists (option, values) as given


class _InOrder(argparse.Action):
    """Lists every prompt option in the order given (a later box on a slice wins)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, ORDER, [*getattr(namespace, ORDER, []), (option_string, values)])


def add_prompt_options(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(**{ORDER: []})
    add = parser.add_argument
    add("--slice", type=int, help="key slice: voxel index along the array axis closest to --axis")
    add("--box", nargs=4, action=_InOrder, metavar=("I0", "J0", "I1", "J1"),
        help="box on the key slice: the two in-plane voxel indices (index order), minimum then maximum, inclusive")
    add("--point", nargs=3, action=_InOrder, metavar=("I", "J", "pos|neg"),
        help="a click on the key slice (in-plane voxel indices); repeatable")
    add("--box-at", nargs=5, action=_InOrder, metavar=("K", "I0", "J0", "I1", "J1"),
        help="a box on slice K (each prompted slice is a seed); repeatable")
    add("--point-at", nargs=4, action=_InOrder, metavar=("K", "I", "J", "pos|neg"), help="a click on slice K; repeatable")
    add("--box-ras", nargs=6, action=_InOrder, metavar=("R0", "A0", "S0", "R1", "A1", "S1"),
        help="box as two opposite corners in RAS mm (as Slicer shows them); corners on different slices give the object's "
             "ends (the range) and put the box on the key slice")
    add("--box-ras-at", nargs=6, action=_InOrder, metavar=("R0", "A0", "S0", "R1", "A1", "S1"),
        help="a box in RAS mm on the slice its corners lie on; repeatable")
    add("--point-ras", nargs=4, action=_InOrder, metavar=("R", "A", "S", "pos|neg"),
        help="a click in RAS mm, on the slice it lies on; repeatable")
    add("--range", type=int, nargs=2, metavar=("A", "B"),
        help="propagate over slices A..B (inclusive) instead of until the object disappears")


def prompt_options_given(args) -> list[str]:
    return [option for option, _ in getattr(args, ORDER)]


@dataclass
class CommandLinePrompts:
    key_slice: int
    prompts: SlicePrompts | None
    prompts_at: dict[int, SlicePrompts]
    slice_range: tuple[int, int] | None


def prompts_from_args(args, volume, plane) -> CommandLinePrompts:
    """The key slice, the prompts on it and on further slices (display orientation), and the
    range (`--range`, or the extent of a `--box-ras` that spans several slices)."""
    placed: list[tuple[int | None, Box | Point]] = []  # (slice, or None for the key slice; prompt)
    extent: BoxAcross | None = None
    for option, values in getattr(args, ORDER):
        if option == "--box":
            placed.append((None, box_from_index(plane, *map(_number, values))))
        elif option == "--point":
            placed.append((None, point_from_index(plane, _number(values[0]), _number(values[1]), _polarity(values[2]))))
        elif option == "--box-at":
            placed.append((_slice(values[0]), box_from_index(plane, *map(_number, values[1:]))))
        elif option == "--point-at":
            placed.append((_slice(values[0]), point_from_index(plane, _number(values[1]), _number(values[2]), _polarity(values[3]))))
        elif option == "--point-ras":
            placed.append(point_from_ras(volume.geometry, plane, [_number(v) for v in values[:3]], _polarity(values[3])))
        else:
            across = box_from_ras(volume.geometry, plane, [_number(v) for v in values[:3]], [_number(v) for v in values[3:]])
            if across.flat:
                placed.append((across.first, across.box))
            elif option == "--box-ras-at":
                raise PromptError(f"--box-ras-at {' '.join(values)} spans {plane.view} slices {across.first} to {across.last}: "
                                  "a box on one slice has both corners on it (--box-ras gives the object's ends)")
            elif extent is not None:
                raise PromptError("give the object's ends once: one --box-ras that spans several slices")
            else:
                extent = across
                placed.append((None, across.box))
    key_slice = _key_slice(args, plane, extent, [index for index, _ in placed if index is not None])
    by_slice = PromptsBySlice()
    for index, prompt in placed:
        by_slice.add(key_slice if index is None else index, prompt)
    prompts, prompts_at = by_slice.split(key_slice)
    given_range = tuple(args.range) if args.range else None
    slice_range = extent.slice_range(given_range, "--box-ras") if extent is not None else given_range
    return CommandLinePrompts(key_slice, prompts, prompts_at, slice_range)


def _key_slice(args, plane, extent: BoxAcross | None, prompted: list[int]) -> int:
    if args.slice is not None:
        return plane.check_slice(args.slice)
    if extent is not None:
        return extent.middle
    if prompted:
        return prompted[0]
    raise PromptError("give the key slice with --slice K (or prompts that name their slice: --box-at, --point-at, --box-ras, --point-ras)")


def _polarity(kind: str) -> bool:
    value = kind.strip().lower()
    if value in ("pos", "positive", "+", "1"):
        return True
    if value in ("neg", "negative", "-", "0"):
        return False
    raise PromptError(f"point type must be pos or neg, got {kind!r}")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise PromptError(f"expected a number, got {text!r}") from None


def _slice(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise PromptError(f"expected a slice number, got {text!r}") from None
