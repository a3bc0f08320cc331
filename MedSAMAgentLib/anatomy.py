"""Segment names, colours and DICOM/SNOMED terminology for common targets.

The same description the user types ("right kidney in abdomen CT") names the segment and,
where a structure is recognised, gives it a colour close to Slicer's generic anatomy
colours and the terminology entry Slicer shows in its segment list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANATOMY_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
REGION_CONTEXT = "Anatomic codes - DICOM master list"
ANATOMICAL_STRUCTURE = ("123037004", "Anatomical Structure")
ALTERED_STRUCTURE = ("49755003", "Morphologically Altered Structure")
SIDES = {"right": ("24028007", "Right"), "left": ("7771000", "Left")}

# keyword -> (SNOMED code, meaning, colour 0-255, category)
_STRUCTURES = {
    "liver": ("10200004", "Liver", (221, 130, 101), ANATOMICAL_STRUCTURE),
    "spleen": ("78961009", "Spleen", (157, 108, 162), ANATOMICAL_STRUCTURE),
    "kidney": ("64033007", "Kidney", (185, 102, 83), ANATOMICAL_STRUCTURE),
    "pancreas": ("15776009", "Pancreas", (249, 180, 111), ANATOMICAL_STRUCTURE),
    "gallbladder": ("28231008", "Gallbladder", (139, 150, 98), ANATOMICAL_STRUCTURE),
    "stomach": ("69695003", "Stomach", (216, 132, 105), ANATOMICAL_STRUCTURE),
    "aorta": ("15825003", "Aorta", (224, 97, 76), ANATOMICAL_STRUCTURE),
    "lung": ("39607008", "Lung", (197, 165, 145), ANATOMICAL_STRUCTURE),
    "heart": ("80891009", "Heart", (206, 110, 84), ANATOMICAL_STRUCTURE),
    "brain": ("12738006", "Brain", (250, 250, 225), ANATOMICAL_STRUCTURE),
    "ventricle": ("66720007", "Lateral ventricle", (88, 106, 215), ANATOMICAL_STRUCTURE),
    "bladder": ("89837001", "Urinary bladder", (222, 154, 132), ANATOMICAL_STRUCTURE),
    "prostate": ("41216001", "Prostate", (230, 158, 140), ANATOMICAL_STRUCTURE),
    "esophagus": ("32849002", "Esophagus", (211, 171, 143), ANATOMICAL_STRUCTURE),
    "adrenal": ("23451007", "Adrenal gland", (249, 186, 150), ANATOMICAL_STRUCTURE),
    "colon": ("71854001", "Colon", (204, 168, 143), ANATOMICAL_STRUCTURE),
    "duodenum": ("38848004", "Duodenum", (255, 253, 229), ANATOMICAL_STRUCTURE),
    "trachea": ("44567001", "Trachea", (182, 228, 255), ANATOMICAL_STRUCTURE),
    "thyroid": ("69748006", "Thyroid", (220, 245, 20), ANATOMICAL_STRUCTURE),
    "tumor": ("108369006", "Neoplasm", (144, 238, 144), ALTERED_STRUCTURE),
    "tumour": ("108369006", "Neoplasm", (144, 238, 144), ALTERED_STRUCTURE),
    "lesion": ("52988006", "Lesion", (144, 238, 144), ALTERED_STRUCTURE),
    "mass": ("4147007", "Mass", (144, 238, 144), ALTERED_STRUCTURE),
}
_FALLBACK_COLOURS = [(241, 214, 145), (177, 122, 101), (111, 184, 210), (216, 101, 79), (128, 174, 128)]


@dataclass(frozen=True)
class SegmentStyle:
    name: str
    colour: tuple[float, float, float]  # 0-1, as Slicer stores it
    terminology: str | None  # Slicer's serialised terminology entry, when recognised


def segment_style(description: str, name: str | None = None) -> SegmentStyle:
    """Name, colour and terminology for a target description such as 'right kidney in CT'."""
    words = re.findall(r"[a-z]+", description.lower())
    display_name = name or _short_name(description)
    for word in words:
        key = word.rstrip("s") if word.rstrip("s") in _STRUCTURES else word
        if key in _STRUCTURES:
            code, meaning, colour, category = _STRUCTURES[key]
            side = next((SIDES[w] for w in words if w in SIDES), None)
            return SegmentStyle(display_name, _unit(colour), _terminology(category, (code, meaning), side))
    colour = _FALLBACK_COLOURS[sum(map(ord, display_name)) % len(_FALLBACK_COLOURS)]
    return SegmentStyle(display_name, _unit(colour), None)


def _short_name(description: str) -> str:
    """'right kidney in abdomen CT' -> 'right kidney': the part before a context phrase."""
    text = description.strip()
    short = re.split(r"\s+(?:in|on|of the|from)\s+(?:an?\s+|the\s+)?(?:\w+\s+)?(?:ct|mri?|mr|scan|image|volume)\b", text, flags=re.I)[0]
    return short.strip() or text or "Segment"


def _terminology(category, structure, side) -> str:
    category_code, category_meaning = category
    code, meaning = structure
    modifier = f"SCT^{side[0]}^{side[1]}" if side else "^^"
    return (
        f"{ANATOMY_CONTEXT}~SCT^{category_code}^{category_meaning}~SCT^{code}^{meaning}~{modifier}"
        f"~{REGION_CONTEXT}~^^~^^"
    )


def _unit(colour) -> tuple[float, float, float]:
    return tuple(round(c / 255.0, 4) for c in colour)
