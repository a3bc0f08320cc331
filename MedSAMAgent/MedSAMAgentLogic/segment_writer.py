"""Writing results into segments the way a Segment Editor effect does: one undo state
(for one segment or several), then `ModifySegmentByLabelmap`, which applies the editor's
masking (editable area, intensity range) and overwrite settings, so other segments are
never erased unless those settings say so."""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from MedSAMAgentLib.anatomy import SegmentStyle
from MedSAMAgentLib.errors import MedSAMAgentError

from .volume_nodes import _world_ijk_to_ras

SEGMENT_EDITOR_SINGLETON = "SegmentEditor"  # the tag of the Segment Editor module's parameter node


class SegmentWriter:
    """Owns a GUI-free Segment Editor logic and a parameter node of its own (not saved with
    the scene). Before each write it takes the masking and overwrite settings from the
    Segment Editor module's node when the scene has one, so the user's settings apply
    without changing what the Segment Editor shows; without one, other segments are left
    alone ("modify other segments: none")."""

    def __init__(self, scene):
        if not hasattr(slicer, "vtkSlicerSegmentEditorLogic"):
            raise MedSAMAgentError("MedSAM-Agent needs 3D Slicer 5.10 or later (for the Segment Editor logic it writes through)")
        self.scene = scene
        self.logic = slicer.vtkSlicerSegmentEditorLogic()
        self.logic.SetMRMLScene(scene)
        self.editor_node = None
        # Inside Slicer, the Segment Editor widget's own saveStateForUndo, so that Ctrl+Z
        # there also undoes a run.
        self.before_write = None

    def write(self, segmentation_node, segment_id: str | None, volume_node, mask: np.ndarray, style: SegmentStyle) -> tuple[str, np.ndarray]:
        """Replace the segment by `mask` ((k, j, i) on the volume's grid) as one undo step;
        without a segment, create one named, coloured and coded after the target. The segment
        is marked "in progress" either way. Returns the segment's ID and what it now holds
        on the volume's grid (the mask as the masking settings let it be written)."""
        return self.write_many(segmentation_node, volume_node, [(segment_id, mask, style)])[0]

    def write_many(self, segmentation_node, volume_node, results: list[tuple[str | None, np.ndarray, SegmentStyle]]) -> list[tuple[str, np.ndarray]]:
        """`write` for several (segment ID or None, mask, style), in order, all as ONE undo
        step. Where results overlap, the Segment Editor's overwrite setting decides, as for
        any effect: a later segment takes the voxels of earlier ones only if it says so."""
        segmentation = segmentation_node.GetSegmentation()
        for segment_id, _, _ in results:
            if segment_id and segmentation.GetSegment(segment_id) is None:
                raise MedSAMAgentError(f"segment {segment_id!r} is no longer in {segmentation_node.GetName()}")
        if segmentation.GetNumberOfSegments() and segmentation.GetSourceRepresentationName() != "Binary labelmap":
            raise MedSAMAgentError(
                f"{segmentation_node.GetName()} is stored as {segmentation.GetSourceRepresentationName()}; "
                "convert it to a binary labelmap in the Segmentations module first"
            )
        self._take_user_settings(segmentation)
        self.bind(segmentation_node, results[0][0] or "", volume_node)
        if not self.logic.SaveStateForUndo():
            raise MedSAMAgentError(f"could not save an undo state for {segmentation_node.GetName()}")
        if self.before_write is not None:
            self.before_write(segmentation_node)
        status = slicer.vtkSlicerSegmentationsModuleLogic
        editor = slicer.vtkSlicerSegmentEditorLogic
        segment_ids = []
        for segment_id, mask, style in results:
            if not segment_id:
                segment_id = segmentation.AddEmptySegment("", style.name, list(style.colour))
                _style(segmentation.GetSegment(segment_id), style)
            self.logic.SetCurrentSegmentID(segment_id)
            status.SetSegmentStatus(segmentation.GetSegment(segment_id), status.InProgress)
            labelmap = oriented_labelmap(mask, volume_node, segmentation_node)
            self.logic.ModifySegmentByLabelmap(segmentation_node, segment_id, labelmap, editor.ModificationModeSet, False, False)
            segment_ids.append(segment_id)
        written = [(segment_id, segment_array(segmentation_node, segment_id, volume_node)) for segment_id in segment_ids]
        wanted = [content for (_, mask, _), (_, content) in zip(results, written) if mask.any()]
        if wanted and not any(content.any() for content in wanted):
            self.logic.Undo()
            raise MedSAMAgentError(
                "nothing could be written: the Segment Editor's masking settings (editable area or intensity range) "
                "exclude the whole result; the segmentation was not changed"
            )
        return written

    def bind(self, segmentation_node, segment_id: str, volume_node) -> None:
        if segmentation_node.GetNodeReference(segmentation_node.GetReferenceImageGeometryReferenceRole()) is None:
            segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
        self.logic.SetSegmentationNode(segmentation_node)
        self.logic.SetSourceVolumeNode(volume_node)
        self.logic.SetCurrentSegmentID(segment_id)

    def _own_node(self):
        """The writer's parameter node, made again when a closed scene took it away."""
        if self.editor_node is None or self.editor_node.GetScene() is not self.scene:
            node = slicer.vtkMRMLSegmentEditorNode()
            node.SetName("MedSAMAgentSegmentEditor")
            node.SetHideFromEditors(True)
            node.SetSaveWithScene(False)
            self.scene.AddNode(node)
            self.editor_node = node
            self.logic.SetSegmentEditorNode(node)
        return self.editor_node

    def _take_user_settings(self, segmentation) -> None:
        own = self._own_node()
        user = self.scene.GetSingletonNode(SEGMENT_EDITOR_SINGLETON, "vtkMRMLSegmentEditorNode")
        if user is None:
            own.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteNone)
            own.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedEverywhere)
            own.SetSourceVolumeIntensityMask(False)
            return
        mask_segment = user.GetMaskSegmentID() or ""
        if user.GetMaskMode() == slicer.vtkMRMLSegmentationNode.EditAllowedInsideSingleSegment and segmentation.GetSegment(mask_segment) is None:
            raise MedSAMAgentError(
                f"the Segment Editor's editable area is inside segment {mask_segment!r}, which this segmentation does not have; "
                "change the editable area in the Segment Editor's masking settings"
            )
        copy_masking_settings(user, own)

    def undo(self) -> None:
        if not self.logic.CanUndo():
            raise MedSAMAgentError("nothing to undo: no run has written into this segmentation since it was last selected")
        self.logic.Undo()


def copy_masking_settings(source, target) -> None:
    """The masking (editable area, intensity range) and overwrite settings of one Segment
    Editor parameter node, onto another."""
    target.SetOverwriteMode(source.GetOverwriteMode())
    target.SetMaskMode(source.GetMaskMode())
    target.SetMaskSegmentID(source.GetMaskSegmentID() or "")
    target.SetSourceVolumeIntensityMask(source.GetSourceVolumeIntensityMask())
    target.SetSourceVolumeIntensityMaskRange(*source.GetSourceVolumeIntensityMaskRange())


def _style(segment, style: SegmentStyle) -> None:
    segment.SetName(style.name)
    segment.SetNameAutoGenerated(False)
    segment.SetColor(*style.colour)
    segment.SetColorAutoGenerated(False)
    if style.terminology:
        segment.SetTerminology(style.terminology)


def oriented_labelmap(mask: np.ndarray, volume_node, segmentation_node=None):
    """A (k, j, i) mask as a vtkOrientedImageData on the volume's grid, expressed in the
    segmentation node's coordinates (they differ when either is under a transform)."""
    image = slicer.vtkOrientedImageData()
    image.SetDimensions(mask.shape[::-1])
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = np.ascontiguousarray(mask, np.uint8).ravel()
    matrix = _world_ijk_to_ras(volume_node)
    if segmentation_node is not None and segmentation_node.GetParentTransformNode() is not None:
        to_world = vtk.vtkMatrix4x4()
        segmentation_node.GetParentTransformNode().GetMatrixTransformToWorld(to_world)
        matrix = np.linalg.inv(slicer.util.arrayFromVTKMatrix(to_world)) @ matrix
    image.SetImageToWorldMatrix(slicer.util.vtkMatrixFromArray(matrix))
    return image


def segment_array(segmentation_node, segment_id: str, volume_node) -> np.ndarray:
    """The segment as a (k, j, i) boolean array on the volume's grid."""
    labelmap = slicer.vtkOrientedImageData()
    segmentation_node.GetBinaryLabelmapRepresentation(segment_id, labelmap)
    reference = oriented_labelmap(np.zeros(_dimensions(volume_node)[::-1], np.uint8), volume_node, segmentation_node)
    resampled = slicer.vtkOrientedImageData()
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(labelmap, reference, resampled, False, False)
    values = numpy_support.vtk_to_numpy(resampled.GetPointData().GetScalars())
    return values.reshape(resampled.GetDimensions()[::-1]) > 0


def _dimensions(volume_node):
    return volume_node.GetImageData().GetDimensions()
