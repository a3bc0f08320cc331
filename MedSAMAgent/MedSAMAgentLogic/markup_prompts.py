"""The ROI and the points placed in the views, as engine prompts on any slice.

The ROI lies across the key slice (the slice the chosen view shows) and is the box on it.
An ROI one slice thick leaves the object's ends to propagation; an ROI that spans several
slices along the view is also the object's extent: propagation covers exactly its slices.
Each point is a prompt on the slice it lies on: on the key slice it joins the ROI, on
another slice it is one more seed.
"""

from __future__ import annotations

from dataclasses import dataclass

from MedSAMAgentLib.errors import PromptError
from MedSAMAgentLib.io.volumes import Volume
from MedSAMAgentLib.orientation import SlicePlane
from MedSAMAgentLib.prompts import PromptsBySlice, SlicePrompts, box_from_ras, point_from_ras


@dataclass
class MarkupPrompts:
    key_slice: int
    prompts: SlicePrompts
    prompts_at: dict[int, SlicePrompts]
    slice_range: tuple[int, int] | None

    @property
    def slices(self) -> set[int]:
        """Every slice that holds a prompt."""
        return {self.key_slice, *self.prompts_at}


def markup_prompts(job, volume: Volume, plane: SlicePlane, key_slice: int) -> MarkupPrompts:
    """The prompts of `job` (a `SegmentationJob`: its ROI corners and points in RAS, and the
    range it may give) on `volume`'s slices along `plane`."""
    by_slice = PromptsBySlice()
    slice_range = job.slice_range
    if job.box_ras is not None:
        across = box_from_ras(volume.geometry, plane, *job.box_ras)
        if not across.first <= key_slice <= across.last:
            raise PromptError(
                f"the ROI covers {plane.view} slices {across.first} to {across.last}, not the key slice {key_slice}: "
                "move the ROI or the slice view"
            )
        by_slice.add(key_slice, across.box)
        slice_range = across.slice_range(job.slice_range, "the ROI")
    for ras, positive in job.points_ras:
        by_slice.add(*point_from_ras(volume.geometry, plane, ras, positive))
    prompts, prompts_at = by_slice.split(key_slice)
    if prompts is None:
        raise PromptError(
            f"nothing is placed on {plane.view} slice {key_slice}, the key slice: place the ROI or a point on the slice the view "
            "shows (points on other slices add to it)"
        )
    return MarkupPrompts(key_slice, prompts, prompts_at, slice_range)
