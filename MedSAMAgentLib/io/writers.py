"""Segmentations out: NIfTI, NRRD, MetaImage and Slicer `.seg.nrrd`, always on the input's
exact voxel grid, written atomically.

A NIfTI output of a NIfTI input reuses the input's header (affine, qform/sform codes) so
the geometry is byte-for-byte the input's. Writes go to a temporary file in the target
folder and are renamed into place only when complete; the input is never overwritten
and an existing output is replaced only when asked.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..anatomy import SegmentStyle
from ..errors import OutputError
from .volumes import Geometry, Volume

OUTPUT_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".mha")


def output_suffix(path: Path) -> str:
    name = Path(path).name.lower()
    for suffix in OUTPUT_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise OutputError(
        f"{path.name}: unsupported output type; use one of {', '.join(OUTPUT_SUFFIXES)}"
    )


def check_output_path(path: Path, overwrite: bool, protected: list[Path]) -> Path:
    """Fail before any work if the output cannot or must not be written."""
    path = Path(path)
    resolved = path.resolve()
    for source in protected:
        source = Path(source).resolve()
        if resolved == source or (source.is_dir() and source in resolved.parents):
            raise OutputError(f"refusing to write {path}: it is (or is inside) the input {source}")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it")
    if path.exists() and path.is_dir():
        raise OutputError(f"{path} is a folder, not a file")
    if not path.parent.exists():
        raise OutputError(f"output folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"output folder {path.parent} is not writable")
    return path


def write_segmentation(mask: np.ndarray, volume: Volume, path: Path, style: SegmentStyle) -> Path:
    """Write a (k, j, i) binary mask on `volume`'s grid to `path` (format from the suffix)."""
    if mask.shape != volume.geometry.array_shape:
        raise ValueError(f"mask shape {mask.shape} differs from the volume {volume.geometry.array_shape}")
    labels = mask.astype(np.uint8)
    path = Path(path)
    suffix = output_suffix(path)
    if suffix == ".seg.nrrd":
        return _atomic(path, suffix, lambda temp: _write_seg_nrrd(labels, volume.geometry, temp, style))
    if suffix in (".nii", ".nii.gz") and volume.nifti_header is not None:
        return _atomic(path, suffix, lambda temp: _write_nifti_like_input(labels, volume, temp))
    return _atomic(path, suffix, lambda temp: _write_sitk(labels, volume.geometry, temp))


def write_volume(volume: Volume, path: Path) -> Path:
    """Save the volume itself (the demo writes its generated sample next to the result)."""
    suffix = output_suffix(path)
    return _atomic(path, suffix, lambda temp: _write_sitk(volume.array, volume.geometry, temp))


def _atomic(path: Path, suffix: str, write) -> Path:
    path = Path(path)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{suffix}", dir=path.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        write(temp)
        os.replace(temp, path)
    except (OSError, RuntimeError) as error:
        temp.unlink(missing_ok=True)
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else error.__class__.__name__
        raise OutputError(f"cannot write {path}: {reason}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def _image(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    return geometry.apply_to(sitk.GetImageFromArray(array))


def _write_sitk(array: np.ndarray, geometry: Geometry, temp: Path) -> None:
    sitk.WriteImage(_image(array, geometry), str(temp), useCompression=True)


def _write_nifti_like_input(labels: np.ndarray, volume: Volume, temp: Path) -> None:
    import nibabel

    header = volume.nifti_header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1.0, 0.0)
    header["cal_min"], header["cal_max"] = 0, 1
    image = nibabel.Nifti1Image(np.transpose(labels, (2, 1, 0)), None, header=header)
    image.set_qform(header.get_qform(), code=int(header["qform_code"]))
    image.set_sform(header.get_sform(), code=int(header["sform_code"]))
    nibabel.save(image, str(temp))


def _write_seg_nrrd(labels: np.ndarray, geometry: Geometry, temp: Path, style: SegmentStyle) -> None:
    """A single-segment Slicer segmentation: a uint8 labelmap with Slicer's segment fields."""
    image = _image(labels, geometry)
    extent = _extent(labels)
    tags = "Segmentation.Status:inprogress|"
    if style.terminology:
        tags += f"TerminologyEntry:{style.terminology}|"
    fields = {
        "Segment0_ID": _segment_id(style.name),
        "Segment0_Name": style.name,
        "Segment0_NameAutoGenerated": "0",
        "Segment0_Color": " ".join(f"{c:g}" for c in style.colour),
        "Segment0_ColorAutoGenerated": "0",
        "Segment0_LabelValue": "1",
        "Segment0_Layer": "0",
        "Segment0_Extent": " ".join(str(v) for v in extent),
        "Segment0_Tags": tags,
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
        "Segmentation_ReferenceImageExtentOffset": "0 0 0",
        "Segmentation_ConversionParameters": (
            f"Reference image geometry|{_serialised_geometry(geometry)}|Image geometry description&"
        ),
    }
    for key, value in fields.items():
        image.SetMetaData(key, value)
    sitk.WriteImage(image, str(temp), useCompression=True)


def _extent(labels: np.ndarray) -> list[int]:
    """Slicer's segment extent (i0 i1 j0 j1 k0 k1); an empty segment gets an empty extent."""
    if not labels.any():
        return [0, -1, 0, -1, 0, -1]
    extent = []
    for numpy_axis in (2, 1, 0):
        other = tuple(a for a in range(3) if a != numpy_axis)
        present = np.flatnonzero(labels.any(axis=other))
        extent += [int(present[0]), int(present[-1])]
    return extent


def _serialised_geometry(geometry: Geometry) -> str:
    """vtkSegmentationConverter's image geometry string: the IJK-to-RAS matrix row by row,
    then the extent."""
    matrix = geometry.ijk_to_ras()
    values = [f"{v:.17g}" for v in matrix.ravel()]
    size = geometry.size
    values += [str(v) for v in (0, size[0] - 1, 0, size[1] - 1, 0, size[2] - 1)]
    return ";".join(values) + ";"


def _segment_id(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")
    return cleaned or "Segment_1"
