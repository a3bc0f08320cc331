"""Segmentations out: NIfTI, NRRD, MetaImage, Slicer `.seg.nrrd` and DICOM SEG, always on
the input's exact voxel grid, written atomically.

One or several segments (one per target): `.seg.nrrd` and DICOM SEG hold one segment
each (overlaps kept: a `.seg.nrrd` puts overlapping segments in separate layers, as
Slicer does); NIfTI, NRRD and MetaImage hold a label map (label n for the n-th segment; a
voxel claimed by several segments gets the first one's label) and, for several segments,
a sidecar `NAME.labels.tsv` beside it (label, name, code, colour). A NIfTI output of a
NIfTI input reuses the input's header (affine, qform/sform codes) so the geometry is
byte-for-byte the input's. Writes go to temporary files in the target folder and are
renamed into place only when all are complete; the input is never overwritten and an
existing output is replaced only when asked.
"""

from __future__ import annotations

import os
import shutil
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..anatomy import SegmentStyle
from ..errors import OutputError
from .atomic import replaced_atomically
from .dicom_seg import Provenance, check_dicom_output, write_dicom_seg
from .volumes import Geometry, Volume

OUTPUT_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".mha", ".dcm")
LABEL_MAP_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
SIDECAR_SUFFIX = ".labels.tsv"
Segments = list[tuple[np.ndarray, SegmentStyle]]


def output_suffix(path: Path) -> str:
    name = Path(path).name.lower()
    for suffix in OUTPUT_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise OutputError(
        f"{path.name}: unsupported output type; use one of {', '.join(OUTPUT_SUFFIXES)}"
    )


def output_paths(path: Path, several: bool) -> list[Path]:
    """Every file a result writes: the output, and the sidecar of a label map when the
    result is of `several` targets."""
    path = Path(path)
    suffix = output_suffix(path)
    if several and suffix in LABEL_MAP_SUFFIXES:
        return [path, path.with_name(path.name[: -len(suffix)] + SIDECAR_SUFFIX)]
    return [path]


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


def check_free_space(path: Path, geometry: Geometry, segments: int = 1) -> None:
    """Refuse before any work an output whose folder cannot hold it. What it needs: a byte a
    voxel for the uncompressed `.nii` label map, else a bit a voxel per segment (a DICOM
    SEG's packed frames; the compressed formats hold masks in less)."""
    voxels = int(np.prod(geometry.array_shape))
    needed = voxels if output_suffix(path) == ".nii" else segments * voxels // 8
    free = shutil.disk_usage(Path(path).parent).free
    if free < needed:
        raise OutputError(f"cannot write {path}: its folder has {_megabytes(free)} free and the result needs about "
                          f"{_megabytes(needed)}; free some space or write elsewhere")


def _megabytes(size: int) -> str:
    return f"{size / (1 << 20):.1f} MB"


def write_segmentation(mask: np.ndarray, volume: Volume, path: Path, style: SegmentStyle, provenance: Provenance | None = None) -> Path:
    """Write a (k, j, i) binary mask on `volume`'s grid to `path` (format from the suffix)."""
    return write_segments([(mask, style)], volume, path, provenance)[0]


def write_segments(segments: Segments, volume: Volume, path: Path, provenance: Provenance | None = None,
                   sidecar: bool | None = None) -> list[Path]:
    """Write one segment per (mask, style) to `path` (format from the suffix) and, for a
    label map, its sidecar when `sidecar` says so (default: for several segments; a run of
    several targets of which one survived still says which it is); returns the files."""
    for mask, _ in segments:
        if mask.shape != volume.geometry.array_shape:
            raise ValueError(f"mask shape {mask.shape} differs from the volume {volume.geometry.array_shape}")
    path = Path(path)
    suffix = output_suffix(path)
    if suffix == ".seg.nrrd":
        return _atomic([path], lambda temps: _write_seg_nrrd(segments, volume.geometry, temps[0]))
    if suffix == ".dcm":
        check_dicom_output(volume, path)
        return _atomic([path], lambda temps: write_dicom_seg(segments, volume, temps[0], provenance or Provenance("unspecified", None)))
    labels = label_map([mask for mask, _ in segments])
    paths = output_paths(path, len(segments) > 1 if sidecar is None else sidecar)

    def write(temps: list[Path]) -> None:
        if suffix in (".nii", ".nii.gz") and volume.nifti_header is not None:
            _write_nifti_like_input(labels, volume, temps[0])
        else:
            _write_sitk(labels, volume.geometry, temps[0])
        if len(temps) > 1:
            _write_sidecar([style for _, style in segments], temps[1])

    return _atomic(paths, write)


def label_map(masks: list[np.ndarray]) -> np.ndarray:
    """uint8 labels: n for the n-th mask; the first mask claiming a voxel keeps it."""
    if len(masks) > 255:
        raise OutputError(f"{len(masks)} segments do not fit a label map (at most 255); write .seg.nrrd or DICOM SEG")
    labels = np.zeros(masks[0].shape, np.uint8)
    for number in range(len(masks), 0, -1):
        labels[np.asarray(masks[number - 1], bool)] = number
    return labels


def write_volume(volume: Volume, path: Path) -> Path:
    """Save the volume itself (the demo writes its generated sample next to the result)."""
    return _atomic([path], lambda temps: _write_sitk(volume.array, volume.geometry, temps[0]))[0]


def _atomic(paths: list[Path], write) -> list[Path]:
    """Run `write` on temporary files beside `paths`, then rename them all into place."""
    try:
        with ExitStack() as stack:
            temps = [stack.enter_context(replaced_atomically(path, _format_suffix(path))) for path in paths]
            write(temps)
    except (OSError, RuntimeError, ValueError) as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else error.__class__.__name__
        raise OutputError(f"cannot write {paths[0]}: {reason}") from None
    return list(paths)


def _format_suffix(path: Path) -> str:
    """The suffix a writer chooses its format by (".seg.nrrd", ".nii.gz", ...)."""
    return output_suffix(path) if path.name.lower().endswith(OUTPUT_SUFFIXES) else path.suffix


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


def _write_seg_nrrd(segments: Segments, geometry: Geometry, temp: Path) -> None:
    """A Slicer segmentation: one segment per mask, with name, colour, terminology and
    status; overlapping segments go to separate layers (a 4D NRRD), as Slicer saves them."""
    layers: list[np.ndarray] = []
    fields = {}
    for number, (mask, style) in enumerate(segments):
        mask = np.asarray(mask, bool)
        layer = next((index for index, labels in enumerate(layers) if not labels[mask].any()), len(layers))
        if layer == len(layers):
            layers.append(np.zeros(mask.shape, np.uint8))
        value = int(layers[layer].max()) + 1
        layers[layer][mask] = value
        tags = "Segmentation.Status:inprogress|" + (f"TerminologyEntry:{style.terminology}|" if style.terminology else "")
        prefix = f"Segment{number}_"
        fields.update({
            prefix + "ID": _segment_id(style.name, number),
            prefix + "Name": style.name,
            prefix + "NameAutoGenerated": "0",
            prefix + "Color": " ".join(f"{c:g}" for c in style.colour),
            prefix + "ColorAutoGenerated": "0",
            prefix + "LabelValue": str(value),
            prefix + "Layer": str(layer),
            prefix + "Extent": " ".join(str(v) for v in _extent(mask)),
            prefix + "Tags": tags,
        })
    fields.update({
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
        "Segmentation_ReferenceImageExtentOffset": "0 0 0",
        "Segmentation_ConversionParameters": (
            f"Reference image geometry|{_serialised_geometry(geometry)}|Image geometry description&"
        ),
    })
    if len(layers) == 1:
        image = _image(layers[0], geometry)
    else:
        image = geometry.apply_to(sitk.GetImageFromArray(np.stack(layers, axis=-1), isVector=True))
    for key, value in fields.items():
        image.SetMetaData(key, value)
    sitk.WriteImage(image, str(temp), useCompression=True)


def _write_sidecar(styles: list[SegmentStyle], temp: Path) -> None:
    rows = ["label\tname\tcode\tcategory\tcolour"]
    for label, style in enumerate(styles, 1):
        colour = " ".join(str(round(255 * c)) for c in style.colour)
        category = f"{style.category.scheme_designator}^{style.category.value}^{style.category.meaning}"
        rows.append(f"{label}\t{style.name}\t{style.code_text}\t{category}\t{colour}")
    temp.write_text("\n".join(rows) + "\n", encoding="utf-8")


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


def _segment_id(name: str, number: int) -> str:
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")
    return f"{cleaned or 'Segment'}_{number + 1}" if number else (cleaned or "Segment_1")
