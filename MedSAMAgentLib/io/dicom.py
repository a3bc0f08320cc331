"""DICOM in: a series from a folder (or a multi-frame object from a file), with the slices'
real positions.

Headers are read with pydicom; geometry comes from every slice's (or frame's) own position
and orientation (`dicom_grid`), never from the first two slices. Pixels are decoded by
SimpleITK (GDCM), which reads every transfer syntax PACS use and applies the rescale.

- Localizer and scout images (Image Type LOCALIZER or SCOUT) are left out, with a note.
- Multi-frame (enhanced and legacy-converted) CT and MR objects load: their frames are
  placed like the slices of a series, from the functional groups.
- With several series, the one with the most slices is read, or the one named.
- Damaged files (pixel data shorter than its header says) are refused.
- The volume remembers its source (files, UIDs) for a DICOM SEG; it never travels to a
  server.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputImageError
from .dicom_grid import layout_slices, regular_geometry, resample

NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "SR", "KO", "PR", "REG", "DOC"}
SKIPPED_IMAGE_TYPES = {"LOCALIZER", "SCOUT"}


@dataclass(frozen=True)
class DicomSource:
    """What a DICOM SEG needs to reference the series a volume came from."""

    files: tuple[Path, ...]  # the instances read, in slice order (one file for a multi-frame object)
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    resampled: bool  # the volume's grid is not the slices' own (see dicom_grid)


@dataclass
class _Slice:
    path: Path
    frame: int | None  # frame number (0-based) in a multi-frame object
    position: tuple[float, float, float]
    orientation: tuple[float, ...]
    pixel_spacing: tuple[float, float]  # DICOM order: between rows, between columns
    shape: tuple[int, int]


@dataclass
class _Series:
    uid: str
    description: str = ""
    modality: str = ""
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    left_out: int = 0

    def __post_init__(self):
        self.slices: list[_Slice] = []


def read_dicom(path: Path, series_uid: str | None, log):
    """(array (k, j, i), Geometry, modality, description, DicomSource) of the chosen series."""
    series = find_series([path] if path.is_file() else _files_under(path))
    if not series:
        raise InputImageError(f"{path}: no DICOM image series found" + (" in this folder or its subfolders" if path.is_dir() else ""))
    if series_uid is not None:
        if series_uid not in series:
            raise InputImageError(f"series {series_uid} is not in {path}; found: {', '.join(sorted(series))}")
        chosen = series[series_uid]
    else:
        chosen = max(series.values(), key=lambda s: (len(s.slices), s.uid))
    others = len(series) - 1
    log(
        f"DICOM: using series {chosen.uid} ({len(chosen.slices)} slices"
        + (f", {chosen.description}" if chosen.description else "")
        + ")"
        + (f"; {others} other series ignored (choose with --series-uid)" if others else "")
    )
    if chosen.left_out:
        log(f"note: {chosen.left_out} localizer/scout image(s) of series {chosen.uid} left out")
    layout = layout_slices(
        [s.position for s in chosen.slices], [s.orientation for s in chosen.slices],
        [s.pixel_spacing for s in chosen.slices], [s.shape for s in chosen.slices], chosen.uid,
    )
    ordered = [chosen.slices[i] for i in layout.order]
    stack = _pixels(ordered)
    if layout.regular:
        array, geometry = stack, regular_geometry(layout)
    else:
        array, geometry = resample(stack, layout, chosen.uid, log)
    files = tuple(dict.fromkeys(s.path for s in ordered))
    source = DicomSource(files, chosen.uid, chosen.study_uid, chosen.frame_of_reference_uid, resampled=not layout.regular)
    modality = {"CT": "CT", "MR": "MR"}.get(chosen.modality.upper())
    return array, geometry, modality, chosen.description or f"DICOM series {chosen.uid}", source


def find_series(files) -> dict[str, _Series]:
    """Series instance UID -> its image slices, over `files` (others are skipped)."""
    series: dict[str, _Series] = {}
    for path in files:
        dataset = _header(path)
        if dataset is None:
            continue
        if "PixelData" not in dataset:
            if _declares_an_image(dataset):
                raise InputImageError(f"{Path(path).name} is truncated or damaged: it ends before its pixel data; copy or export the series again")
            continue
        if str(dataset.get("Modality", "")).upper() in NON_IMAGE_MODALITIES:
            continue
        uid = str(dataset.get("SeriesInstanceUID", ""))
        entry = series.setdefault(uid, _Series(
            uid, str(dataset.get("SeriesDescription", "")).strip(), str(dataset.get("Modality", "")).strip(),
            str(dataset.get("StudyInstanceUID", "")), str(dataset.get("FrameOfReferenceUID", "")),
        ))
        if SKIPPED_IMAGE_TYPES & {str(v).upper() for v in dataset.get("ImageType", [])}:
            entry.left_out += 1
            continue
        _check_pixel_data_complete(Path(path), dataset)
        entry.slices.extend(_slices_of(Path(path), dataset))
    return {uid: entry for uid, entry in series.items() if entry.slices}


def _header(path: Path):
    """The file's DICOM data set (large values left unread), or None for a file that is not
    DICOM. Files written without the 128-byte preamble are read too, when they hold an image."""
    import pydicom

    try:
        with warnings.catch_warnings():  # a damaged file is refused below with one line
            warnings.simplefilter("ignore", UserWarning)
            return pydicom.dcmread(str(path), defer_size="4 KB")
    except pydicom.errors.InvalidDicomError:
        pass
    except Exception as error:  # pydicom raises several types for damaged files
        if _has_dicom_preamble(path):
            raise InputImageError(f"{path.name} is a damaged DICOM file ({error.__class__.__name__}: {error}); "
                                  "copy or export the series again") from None
        return None
    try:
        dataset = pydicom.dcmread(str(path), defer_size="4 KB", force=True)
    except Exception:
        return None
    return dataset if "SOPClassUID" in dataset and "PixelData" in dataset else None


def _declares_an_image(dataset) -> bool:
    """Whether the file's meta header names an image storage class (CT, MR, ... images)."""
    meta = getattr(dataset, "file_meta", None)
    sop_class = meta.get("MediaStorageSOPClassUID") if meta is not None else None
    return sop_class is not None and "Image Storage" in getattr(sop_class, "name", "")


def _has_dicom_preamble(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(128)
        return handle.read(4) == b"DICM"


def _files_under(folder: Path):
    for directory, _, names in os.walk(folder):
        for name in sorted(names):
            if name.upper() != "DICOMDIR":
                yield Path(directory) / name


def _slices_of(path: Path, dataset) -> list[_Slice]:
    shape = (int(dataset.Rows), int(dataset.Columns))
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if "PerFrameFunctionalGroupsSequence" not in dataset:
        if frames > 1:
            raise InputImageError(f"{path.name} holds {frames} frames without per-frame positions; it cannot be placed in 3D")
        return [_Slice(path, None, _numbers(dataset, "ImagePositionPatient", path, 3),
                       _numbers(dataset, "ImageOrientationPatient", path, 6), _numbers(dataset, "PixelSpacing", path, 2), shape)]
    shared = dataset.get("SharedFunctionalGroupsSequence", [None])[0]
    slices = []
    for number, group in enumerate(dataset.PerFrameFunctionalGroupsSequence):
        position = _functional(group, shared, "PlanePositionSequence", "ImagePositionPatient", path, 3)
        orientation = _functional(group, shared, "PlaneOrientationSequence", "ImageOrientationPatient", path, 6)
        spacing = _functional(group, shared, "PixelMeasuresSequence", "PixelSpacing", path, 2)
        slices.append(_Slice(path, number, position, orientation, spacing, shape))
    return slices


def _functional(group, shared, sequence: str, keyword: str, path: Path, count: int):
    for source in (group, shared):
        if source is not None and sequence in source and source[sequence].value:
            return _numbers(source[sequence].value[0], keyword, path, count)
    raise InputImageError(f"{path.name}: a frame has no {keyword} ({sequence}); it cannot be placed in 3D")


def _numbers(dataset, keyword: str, path: Path, count: int) -> tuple[float, ...]:
    value = dataset.get(keyword)
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != count or not np.all(np.isfinite(numbers)):
        raise InputImageError(f"{path.name}: {keyword} is missing or malformed ({value!r}); the slice cannot be placed in 3D")
    return numbers


def _check_pixel_data_complete(path: Path, dataset) -> None:
    """Refuse a file cut short: its pixel data must be as long as its header says (native
    data), or end with the sequence delimiter (compressed data)."""
    element = dataset.get_item("PixelData")
    size = path.stat().st_size
    if element is None or getattr(element, "value_tell", None) is None:
        return
    length = element.length
    if length == 0xFFFFFFFF:
        with open(path, "rb") as handle:  # the delimiter ends the data, maybe before some trailing padding
            handle.seek(max(size - (1 << 20), element.value_tell))
            tail = handle.read()
        if b"\xfe\xff\xdd\xe0\x00\x00\x00\x00" not in tail and b"\xff\xfe\xe0\xdd\x00\x00\x00\x00" not in tail:
            raise InputImageError(f"{path.name} is truncated: its compressed pixel data has no end; copy or export the series again")
        return
    if element.value_tell + length > size:
        raise InputImageError(
            f"{path.name} is truncated: its header declares {length} bytes of pixel data, the file holds "
            f"{max(size - element.value_tell, 0)}; copy or export the series again"
        )


def _pixels(ordered: list[_Slice]) -> np.ndarray:
    """The slices' pixels, rescaled, as (n, rows, columns), decoded by SimpleITK."""
    import SimpleITK as sitk

    decoded: dict[Path, np.ndarray] = {}
    planes = []
    for entry in ordered:
        if entry.path not in decoded:
            try:
                image = sitk.ReadImage(str(entry.path))
            except RuntimeError as error:
                raise InputImageError(f"cannot decode the pixels of {entry.path.name}: {str(error).strip().splitlines()[-1]}") from None
            array = sitk.GetArrayFromImage(image)
            decoded[entry.path] = array.reshape((-1, *array.shape[-2:]))
        planes.append(decoded[entry.path][entry.frame or 0])
    return np.stack(planes)
