"""DICOM Segmentation objects (SEG) out, through highdicom: what PACS store.

One binary segment per target, each with its label (the typed name), its coded anatomy
(`anatomy`: SNOMED CT from DICOM's CID 7151, with a laterality modifier), its colour and
the algorithm that made it (MedSAM-Agent and its version; as parameters, the segmenter,
whether the prompts came from the user or the agent, and whether the result was edited;
as its source, the agent's policy and model). DICOM limits these texts to 64 characters. The object references the
source series and every instance of it; its frames lie exactly on the volume's grid
(the regular grid a resampled series was given, see `dicom_grid`), so the SEG and a
NIfTI output of the same run agree voxel for voxel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..anatomy import SegmentStyle
from ..errors import OutputError
from .volumes import Volume

MANUFACTURER = "MedSAM-Agent for 3D Slicer"
ALGORITHM_NAME = "MedSAM-Agent"


@dataclass(frozen=True)
class Provenance:
    """How a result was made, for the algorithm identification of a SEG."""

    segmenter: str
    agent: str | None  # the agent's policy and model; None: the user placed the prompts
    edited: bool = False

    @property
    def automatic(self) -> bool:
        return self.agent is not None and not self.edited


def agent_name(on_server: bool, policy: str, model: str | None) -> str:
    """How a SEG names the agent that placed the prompts: its policy and model, or the
    server's (which the server chose)."""
    return "the server's agent" if on_server else policy + (f" {model}" if model else "")


def check_dicom_output(volume: Volume, path: Path) -> None:
    """A SEG references the DICOM series it segments and shares its frame of reference:
    refuse one for any other input, or for a series that lacks the UIDs it must share."""
    if volume.dicom is None:
        raise OutputError(
            f"{Path(path).name}: a DICOM SEG (.dcm) references the DICOM series it segments, and the input "
            f"{volume.description} is not DICOM; write .seg.nrrd, .nii.gz, .nrrd or .mha instead"
        )
    missing = [name for name, uid in (("Frame of Reference UID", volume.dicom.frame_of_reference_uid),
                                      ("Study Instance UID", volume.dicom.study_uid)) if not uid]
    if missing:
        raise OutputError(
            f"{Path(path).name}: the source series has no {' and no '.join(missing)}, which a DICOM SEG must share with it; "
            "write the same result as .seg.nrrd or .nii.gz instead (it lies on the same voxel grid)"
        )


def write_dicom_seg(segments: list[tuple[np.ndarray, SegmentStyle]], volume: Volume, temp: Path, provenance: Provenance) -> None:
    """Write the segments ((k, j, i) masks on the volume's grid) as one SEG to `temp`."""
    import highdicom
    import pydicom
    from pydicom.sr.codedict import codes

    check_dicom_output(volume, temp)
    source = volume.dicom
    datasets = [pydicom.dcmread(str(path), stop_before_pixels=True) for path in source.files]
    geometry = volume.geometry
    axes = geometry.direction_matrix
    spacing_i, spacing_j, spacing_k = geometry.spacing
    algorithm = highdicom.AlgorithmIdentificationSequence(
        name=ALGORITHM_NAME,
        family=codes.cid7162.ArtificialIntelligence,
        version=__version__,
        parameters={"segmenter": provenance.segmenter[:24], "prompts": "agent" if provenance.agent else "user",
                    "edited": "yes" if provenance.edited else "no"},
        source=_text(provenance.agent) if provenance.agent else None,
    )
    kind = highdicom.seg.SegmentAlgorithmTypeValues
    descriptions = [_description(number, style, algorithm, kind.AUTOMATIC if provenance.automatic else kind.SEMIAUTOMATIC)
                    for number, (_, style) in enumerate(segments, 1)]
    stacked = np.stack([np.asarray(mask, bool) for mask, _ in segments], axis=-1).astype(np.uint8)
    positions = [
        highdicom.PlanePositionSequence(highdicom.CoordinateSystemNames.PATIENT, list(np.asarray(geometry.origin) + k * spacing_k * axes[:, 2]))
        for k in range(geometry.size[2])
    ]
    segmentation = highdicom.seg.Segmentation(
        source_images=datasets,
        pixel_array=stacked,
        segmentation_type=highdicom.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=highdicom.UID(),
        series_number=_series_number(datasets[0]),
        sop_instance_uid=highdicom.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=ALGORITHM_NAME,
        software_versions=__version__,
        device_serial_number="none",
        series_description=_text(f"{ALGORITHM_NAME}: " + "; ".join(style.name for _, style in segments)),
        content_label="MEDSAMAGENT",
        content_description=_text(f"{ALGORITHM_NAME} {provenance.segmenter}" + (", edited" if provenance.edited else "")),
        pixel_measures=highdicom.PixelMeasuresSequence(pixel_spacing=[spacing_j, spacing_i], slice_thickness=spacing_k,
                                                       spacing_between_slices=spacing_k),
        plane_orientation=highdicom.PlaneOrientationSequence(highdicom.CoordinateSystemNames.PATIENT, [*axes[:, 0], *axes[:, 1]]),
        plane_positions=positions,
        omit_empty_frames=False,
    )
    segmentation.save_as(temp)


def _description(number: int, style: SegmentStyle, algorithm, algorithm_type):
    import highdicom
    from highdicom.sr import CodedConcept

    description = highdicom.seg.SegmentDescription(
        segment_number=number,
        segment_label=_text(style.name),
        segmented_property_category=style.category,
        segmented_property_type=style.type,
        algorithm_type=algorithm_type,
        algorithm_identification=algorithm,
        tracking_uid=highdicom.UID(),
        tracking_id=_text(style.name),
        display_color=highdicom.color.CIELabColor.from_rgb(*(255.0 * c for c in style.colour)),
    )
    if style.modifier is not None:
        modifier = style.modifier
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            CodedConcept(modifier.value, modifier.scheme_designator, modifier.meaning)
        ]
    return description


def _text(value: str) -> str:
    """A DICOM long string (LO): at most 64 characters, no backslash."""
    value = value.replace("\\", "/")
    return value if len(value) <= 64 else value[:61] + "..."


def _series_number(dataset) -> int:
    try:
        return int(dataset.get("SeriesNumber") or 0) + 1000
    except (TypeError, ValueError):
        return 1000
