"""The key slice and its prompts from `--slice`, `--box`, `--point` and their RAS forms."""

from __future__ import annotations

from ..errors import PromptError
from ..prompts import SlicePrompts, box_from_index, box_from_ras, check_prompts, point_from_index, point_from_ras


def prompts_from_args(args, volume, plane) -> tuple[int, SlicePrompts]:
    """(key slice, display-slice prompts); every prompt must lie on the key slice."""
    slices_named = []
    box = None
    if args.box and args.box_ras:
        raise PromptError("give --box or --box-ras, not both")
    if args.box_ras:
        ras_slice, box = box_from_ras(volume.geometry, plane, args.box_ras[:3], args.box_ras[3:])
        slices_named.append(("--box-ras", ras_slice))
    points = []
    for i, j, kind in args.point:
        points.append(point_from_index(plane, _number(i), _number(j), _polarity(kind)))
    for r, a, s, kind in args.point_ras:
        ras_slice, point = point_from_ras(volume.geometry, plane, [_number(r), _number(a), _number(s)], _polarity(kind))
        slices_named.append(("--point-ras", ras_slice))
        points.append(point)
    if args.slice is not None:
        key_slice = plane.check_slice(args.slice)
    elif slices_named:
        key_slice = slices_named[0][1]
    else:
        raise PromptError("give the key slice with --slice K (or prompts in RAS with --box-ras/--point-ras)")
    for option, ras_slice in slices_named:
        if ras_slice != key_slice:
            raise PromptError(f"{option} lies on {plane.view} slice {ras_slice}, not on the key slice {key_slice}")
    if args.box:
        box = box_from_index(plane, *args.box)
    return key_slice, check_prompts(SlicePrompts(box=box, points=tuple(points)), plane.image_shape)


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
