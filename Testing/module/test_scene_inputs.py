"""Slice views, ROIs and point lists placed in a real MRML scene, read as engine inputs,
and the manual-prompt run the widget starts from them."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from MedSAMAgentLib.errors import InputImageError, PromptError
from MedSAMAgentLib.io.volumes import Geometry
from MedSAMAgentLib.orientation import VIEWS, SlicePlane
from MedSAMAgentLogic import selftest
from MedSAMAgentLogic.scene_inputs import placed_points, roi_corners, slice_shown
from MedSAMAgentLogic.selftest import ANATOMICAL_NORMALS, set_slice_view, voxel_centre_ras
from MedSAMAgentLogic.volume_nodes import add_volume_node, geometry_of, volume_from_node
from Testing.fixtures.volumes import DIRECTIONS, rotation, synthetic_image


def volume_node(scene, direction_name: str):
    image = synthetic_image(DIRECTIONS[direction_name])
    geometry = Geometry.from_image(image)
    return add_volume_node(scene, sitk.GetArrayFromImage(image), geometry.ijk_to_ras(), direction_name), geometry


@pytest.mark.parametrize("direction_name", list(DIRECTIONS))
@pytest.mark.parametrize("view", VIEWS)
def test_a_view_rotated_to_the_volume_plane_shows_its_slice(scene, direction_name, view):
    node, geometry = volume_node(scene, direction_name)
    plane = SlicePlane.for_view(geometry, view)
    volume_axis = geometry.ijk_to_ras()[:3, plane.slice_axis]
    for slice_index in (0, plane.num_slices // 3, plane.num_slices - 1):
        shown = set_slice_view(scene, "Red", volume_axis, voxel_centre_ras(geometry, plane, slice_index))
        assert slice_shown(node, shown) == (view, slice_index)


@pytest.mark.parametrize("direction_name", ["identity", "flipped", "permuted"])
@pytest.mark.parametrize("view", VIEWS)
def test_an_anatomical_view_of_a_straight_volume_shows_the_same_view(scene, direction_name, view):
    node, geometry = volume_node(scene, direction_name)
    plane = SlicePlane.for_view(geometry, view)
    slice_index = plane.num_slices // 2
    shown = set_slice_view(scene, "Red", ANATOMICAL_NORMALS[view], voxel_centre_ras(geometry, plane, slice_index))
    assert slice_shown(node, shown) == (view, slice_index)


def test_an_axial_view_of_a_slightly_oblique_volume_is_accepted(scene):
    node, geometry = volume_node(scene, "oblique")  # its k axis is 17 degrees off S
    plane = SlicePlane.for_view(geometry, "axial")
    shown = set_slice_view(scene, "Red", ANATOMICAL_NORMALS["axial"], voxel_centre_ras(geometry, plane, 7))
    assert slice_shown(node, shown) == ("axial", 7)


def test_a_view_tilted_away_from_every_volume_slice_is_refused(scene):
    node, geometry = volume_node(scene, "identity")
    tilted = rotation("x", 45.0) @ np.array([0.0, 0.0, 1.0])
    shown = set_slice_view(scene, "Yellow", tilted, geometry.ijk_to_ras()[:3, 3])
    with pytest.raises(PromptError, match="the Yellow view is tilted 45 degrees"):
        slice_shown(node, shown)


def test_placed_points_are_read_in_world_coordinates_and_unplaced_ones_skipped(scene):
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    points.AddControlPoint(10.0, -4.5, 22.0)
    points.AddControlPoint(1.0, 2.0, 3.0)
    points.UnsetNthControlPointPosition(1)
    shift = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(np.array(
        [[1, 0, 0, 5.0], [0, 1, 0, 0], [0, 0, 1, -2.0], [0, 0, 0, 1]])))
    points.SetAndObserveTransformNodeID(shift.GetID())
    assert placed_points(points, False) == [((15.0, -4.5, 20.0), False)]
    assert placed_points(None, True) == []


def test_an_unplaced_roi_gives_no_box(scene):
    assert roi_corners(scene.AddNewNodeByClass("vtkMRMLMarkupsROINode")) is None
    assert roi_corners(None) is None


def test_an_roi_away_from_the_key_slice_or_nothing_on_it_is_refused(scene, logic, phantom_node):
    node, kidney = phantom_node
    job = selftest.prompt_job(node, kidney)
    segmentation = selftest.new_segmentation(scene, node)
    before = selftest.snapshot(segmentation, node)

    away = selftest.prompt_job(node, kidney)
    away.key_slice = job.key_slice + 6
    with pytest.raises(PromptError, match=f"not the key slice {job.key_slice + 6}: move the ROI or the slice view"):
        logic.process(node, segmentation, None, away)

    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    centre = np.mean(job.box_ras, axis=0)
    points.AddControlPoint(*(centre + [0.0, 0.0, 4 * geometry_of(node).spacing[2]]))
    job.box_ras, job.points_ras = None, placed_points(points, True)
    with pytest.raises(PromptError, match=f"nothing is placed on axial slice {job.key_slice}, the key slice"):
        logic.process(node, segmentation, None, job)
    assert selftest.snapshot(segmentation, node).keys() == before.keys() == set()


def test_a_volume_node_with_nan_voxels_follows_the_engine_rule_and_is_left_unchanged(scene):
    array = np.linspace(-50.0, 50.0, 5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    array[2, 3, 4] = np.nan
    node = add_volume_node(scene, array, np.eye(4), "with nan")
    notes = []
    volume = volume_from_node(node, log=notes.append)
    assert volume.array[2, 3, 4] == -50.0 and "1 NaN" in notes[0]
    assert np.isnan(slicer.util.arrayFromVolume(node)[2, 3, 4])  # the scene's voxels are untouched
    constant = add_volume_node(scene, np.zeros((3, 4, 5), np.float32), np.eye(4), "flat")
    with pytest.raises(InputImageError, match="flat is empty: every voxel has the value 0"):
        volume_from_node(constant)
