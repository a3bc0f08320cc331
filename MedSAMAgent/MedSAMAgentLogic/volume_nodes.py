"""Volume nodes to engine volumes, exactly: the IJK-to-RAS matrix becomes the engine's
geometry (flipped and oblique axes included) and the voxel array is shared, not resampled."""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from MedSAMAgentLib.errors import InputImageError
from MedSAMAgentLib.io.checks import usable_voxels
from MedSAMAgentLib.io.volumes import Geometry, Volume, guess_modality


def ijk_to_ras(volume_node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def volume_from_node(volume_node, log=print) -> Volume:
    """The engine's view of a scalar volume node. Refuses what the engine cannot segment
    without resampling: no image, vector or 2D images, a non-linear parent transform; and
    applies the engine's input rules to the voxels (`io.checks.usable_voxels`: NaN and
    infinite voxels replaced in a copy, with a note; the node is never changed)."""
    if volume_node is None or volume_node.GetImageData() is None:
        raise InputImageError("select an input volume that holds an image")
    image = volume_node.GetImageData()
    if image.GetNumberOfScalarComponents() != 1:
        raise InputImageError(f"{volume_node.GetName()} is a colour or vector volume; a scalar volume is needed")
    transform = volume_node.GetParentTransformNode()
    if transform is not None and not transform.IsTransformToWorldLinear():
        raise InputImageError(f"{volume_node.GetName()} is under a non-linear transform; harden or remove it first")
    dimensions = image.GetDimensions()
    if min(dimensions) <= 1:
        raise InputImageError(f"{volume_node.GetName()} is a 2D image {dimensions}; a 3D volume is needed")
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dimensions[::-1])
    array = usable_voxels(array, volume_node.GetName(), log)
    modality = _dicom_modality(volume_node) or guess_modality(array)
    return Volume(array=array, geometry=geometry_of(volume_node), modality=modality, description=volume_node.GetName())


def geometry_of(volume_node) -> Geometry:
    """The node's voxel grid in world coordinates, without reading its voxels."""
    return Geometry.from_ijk_to_ras(_world_ijk_to_ras(volume_node), volume_node.GetImageData().GetDimensions())


def _world_ijk_to_ras(volume_node) -> np.ndarray:
    """IJK to world RAS, through a linear parent transform if there is one."""
    matrix = ijk_to_ras(volume_node)
    transform = volume_node.GetParentTransformNode()
    if transform is None:
        return matrix
    to_world = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToWorld(to_world)
    world = np.array([[to_world.GetElement(r, c) for c in range(4)] for r in range(4)])
    return world @ matrix


def _dicom_modality(volume_node) -> str | None:
    """The modality Slicer's DICOM import recorded, when the volume came from DICOM."""
    value = volume_node.GetAttribute("DICOM.Modality") or ""
    return {"CT": "CT", "MR": "MR"}.get(value.strip().upper())


def add_volume_node(scene, array: np.ndarray, ijk_to_ras_matrix: np.ndarray, name: str = "volume"):
    """A scalar volume node holding a (k, j, i) array with the given IJK-to-RAS matrix."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras_matrix))
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array))
    return node
