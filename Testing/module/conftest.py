"""A real MRML scene (slicer-core) for the module's logic; never a mock of MRML."""

from __future__ import annotations

import pytest


@pytest.fixture
def scene():
    import slicer

    scene = slicer.vtkMRMLScene()
    segmentations = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations.SetMRMLScene(scene)  # registers the representation converters
    scene.segmentations_logic = segmentations  # keep it alive as long as the scene
    yield scene
    scene.Clear(True)


@pytest.fixture
def logic(scene, litemedsam, monkeypatch):
    from MedSAMAgentLib import segmenters
    from MedSAMAgentLogic import segmentation_logic

    monkeypatch.setattr(segmenters, "create_segmenter", lambda *args, **kwargs: litemedsam)
    return segmentation_logic.SegmentationLogic(scene)


@pytest.fixture
def phantom_node(scene, phantom):
    from MedSAMAgentLogic.volume_nodes import add_volume_node

    volume, organs = phantom
    return add_volume_node(scene, volume.array, volume.geometry.ijk_to_ras(), "phantom"), organs["right kidney"]
