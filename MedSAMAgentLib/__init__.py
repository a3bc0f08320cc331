"""MedSAM-Agent engine: text- and prompt-driven 3D segmentation of CT and MRI volumes.

Pure Python; importing it loads neither Slicer nor Qt nor torch (models load on first use).
"""

__version__ = "0.1.0"
