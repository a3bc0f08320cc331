"""Volumes in (`volumes`; DICOM in `dicom` and `dicom_grid`) under one set of input rules
(`checks`), and segmentations out (`writers`; DICOM SEG in `dicom_seg`), with their exact
geometry."""
