"""3D volumes in: NIfTI, NRRD/NHDR, MHA/MHD and DICOM series, with their full geometry.

Arrays are kept in SimpleITK's numpy order, (k, j, i), so that `array[k, j, i]` is the
voxel with index (i, j, k). Geometry is kept in DICOM/ITK patient space (LPS); RAS
helpers convert for Slicer and for `--box-ras`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputImageError
from .checks import check_file_complete, usable_voxels

NIFTI_SUFFIXES = (".nii", ".nii.gz")
VOLUME_SUFFIXES = NIFTI_SUFFIXES + (".nrrd", ".nhdr", ".mha", ".mhd")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Geometry:
    """Voxel grid in patient space: size (i, j, k), spacing (mm), origin (LPS mm) and
    direction (3x3, columns are the i, j, k axes in LPS)."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]  # row-major 3x3, as SimpleITK stores it

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def array_shape(self) -> tuple[int, int, int]:
        return (self.size[2], self.size[1], self.size[0])

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def ijk_to_lps(self) -> np.ndarray:
        matrix = np.eye(4)
        matrix[:3, :3] = self.direction_matrix @ np.diag(self.spacing)
        matrix[:3, 3] = self.origin
        return matrix

    def ijk_to_ras(self) -> np.ndarray:
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        return flip @ self.ijk_to_lps()

    def ras_to_continuous_index(self, ras_mm) -> np.ndarray:
        homogeneous = np.append(np.asarray(ras_mm, dtype=float), 1.0)
        return (np.linalg.inv(self.ijk_to_ras()) @ homogeneous)[:3]

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    @classmethod
    def from_image(cls, image: sitk.Image) -> Geometry:
        return cls(
            size=tuple(int(v) for v in image.GetSize()),
            spacing=tuple(float(v) for v in image.GetSpacing()),
            origin=tuple(float(v) for v in image.GetOrigin()),
            direction=tuple(float(v) for v in image.GetDirection()),
        )

    @classmethod
    def from_ijk_to_ras(cls, ijk_to_ras: np.ndarray, size) -> Geometry:
        """Geometry from a Slicer-style IJK-to-RAS matrix (spacing folded into the columns)."""
        matrix = np.asarray(ijk_to_ras, dtype=float)
        lps = LPS_TO_RAS @ matrix[:3, :3]  # the flip is its own inverse
        spacing = np.linalg.norm(lps, axis=0)
        if np.any(spacing <= 0):
            raise InputImageError("the volume's IJK-to-RAS matrix has a zero-length axis")
        direction = lps / spacing
        origin = LPS_TO_RAS @ matrix[:3, 3]
        return cls(
            size=tuple(int(v) for v in size),
            spacing=tuple(float(v) for v in spacing),
            origin=tuple(float(v) for v in origin),
            direction=tuple(float(v) for v in direction.ravel()),
        )


@dataclass
class Volume:
    """A 3D scalar image with its geometry and what is known of its modality. A volume read
    from DICOM keeps `dicom` (its source series, for a DICOM SEG); it never leaves this
    computer (a server receives voxels, geometry and modality only)."""

    array: np.ndarray  # (k, j, i)
    geometry: Geometry
    modality: str  # "CT", "MR" or "OT" (other / unknown)
    description: str = ""
    source_path: Path | None = None
    nifti_header: object | None = field(default=None, repr=False)
    dicom: object | None = field(default=None, repr=False)  # io.dicom.DicomSource

    def __post_init__(self):
        if self.array.shape != self.geometry.array_shape:
            raise ValueError(f"array shape {self.array.shape} does not match geometry {self.geometry.array_shape}")


def read_volume(path: str | os.PathLike, series_uid: str | None = None, log=print) -> Volume:
    """Read a 3D volume from a file or a DICOM folder; raise InputImageError with a clear
    message for anything that is not a usable 3D scalar volume, exactly placed (see
    `checks` and `dicom_grid` for the rules)."""
    path = Path(path)
    if not path.exists():
        raise InputImageError(f"input not found: {path}")
    if path.is_dir() or path.name.lower().endswith(".dcm"):
        from .dicom import read_dicom

        array, geometry, modality, description, dicom = read_dicom(path, series_uid, log)
        nifti_header = None
    else:
        if series_uid:
            raise InputImageError("--series-uid applies to DICOM, not to a single file")
        image = _read_file(path)
        _check_is_scalar_3d(image, path)
        array, geometry = sitk.GetArrayFromImage(image), Geometry.from_image(image)
        nifti_header = _nifti_header(path)
        modality, description, dicom = None, path.name, None
    array = usable_voxels(array, path.name, log)
    if modality is None:
        modality = guess_modality(array)
    return Volume(
        array=array,
        geometry=geometry,
        modality=modality,
        description=description,
        source_path=path,
        nifti_header=nifti_header,
        dicom=dicom,
    )


def guess_modality(array: np.ndarray) -> str:
    """CT when the intensities look like Hounsfield units (air near -1000 and dense tissue
    above +100); otherwise unknown, which selects percentile normalisation."""
    sample = array[:: max(1, array.shape[0] // 32)]
    low, high = np.percentile(sample, [1, 99.9])
    if low <= -500 and high >= 100:
        return "CT"
    return "OT"


def _read_file(path: Path) -> sitk.Image:
    name = path.name.lower()
    if not name.endswith(VOLUME_SUFFIXES):
        raise InputImageError(
            f"{path.name}: unsupported file type; give a NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), "
            "MetaImage (.mha, .mhd) file, a DICOM series folder or a multi-frame DICOM file"
        )
    check_file_complete(path)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        reason = _first_line(str(error))
        raise InputImageError(f"cannot read {path.name}: the file is corrupt or not a supported image ({reason})") from None


def _nifti_header(path: Path):
    if not path.name.lower().endswith(NIFTI_SUFFIXES):
        return None
    import nibabel

    return nibabel.load(str(path)).header.copy()


def _check_is_scalar_3d(image: sitk.Image, path: Path) -> None:
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputImageError(
            f"{path.name} has {image.GetNumberOfComponentsPerPixel()} components per voxel (colour or vector image); "
            "a scalar 3D volume is needed"
        )
    dimension = image.GetDimension()
    if dimension == 2 or (dimension == 3 and min(image.GetSize()) == 1):
        raise InputImageError(f"{path.name} is a 2D image (size {image.GetSize()}); a 3D volume is needed")
    if dimension != 3:
        raise InputImageError(
            f"{path.name} is a {dimension}D image (size {image.GetSize()}); a single 3D volume is needed "
            "(split time series or multi-channel images first)"
        )


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in lines:
        if "description:" in line.lower():
            return line.split(":", 1)[1].strip()
    return lines[-1] if lines else "unknown error"
