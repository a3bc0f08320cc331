"""Segment names, codes and colours for what the user typed ("right kidney in abdomen CT").

Codes come from the DICOM code dictionaries that pydicom ships (the ones highdicom uses):
the segment's type is the concept of CID 7151 "Segmentation Property Type" whose meaning
the typed name contains (the longest, then the last one: "liver lesion" is a lesion), its
category follows the CID the type belongs to (CID 7150), and a side typed outside the
concept ("right" kidney) becomes a laterality modifier (CID 244). A target the dictionary
does not know keeps its typed name and gets the generic "Anatomical Structure" codes.

Colours are derived from the type's code (a hue per code, at one saturation and value),
so a structure gets the same colour in every run and different structures get distinct
ones, without a hand-kept colour list. Slicer's terminology string is written for known
structures (the DICOM master list context, which Slicer ships).
"""

from __future__ import annotations

import colorsys
import functools
import re
from dataclasses import dataclass

from pydicom.sr.coding import Code

SLICER_TYPE_CONTEXT = "Segmentation category and type - DICOM master list"
SLICER_REGION_CONTEXT = "Anatomic codes - DICOM master list"
_TYPE_CID = 7151
# CIDs inside 7151 whose concepts are not anatomical structures, and their CID 7150 category.
_CATEGORY_OF_CID = {7159: "MorphologicallyAbnormalStructure", 7157: "PhysicalObject", 7158: "PhysicalObject",
                    7166: "Tissue", 7161: "Function"}
_SIDES = {"right": "Right", "left": "Left", "bilateral": "Bilateral"}
# Spellings users type for concepts the dictionary names otherwise (words, not codes).
_SPELLINGS = {"tumor": "neoplasm", "tumour": "neoplasm", "tumors": "neoplasm", "tumours": "neoplasm"}
_GOLDEN_ANGLE = 0.381966


@dataclass(frozen=True)
class SegmentStyle:
    name: str
    colour: tuple[float, float, float]  # 0-1, as Slicer stores it
    category: Code
    type: Code
    modifier: Code | None = None
    known: bool = True  # False: the generic codes of an unrecognised target

    @property
    def terminology(self) -> str | None:
        """Slicer's serialised terminology entry, for recognised structures."""
        if not self.known:
            return None
        modifier = _slicer_code(self.modifier) if self.modifier else "^^"
        return (f"{SLICER_TYPE_CONTEXT}~{_slicer_code(self.category)}~{_slicer_code(self.type)}~{modifier}"
                f"~{SLICER_REGION_CONTEXT}~^^~^^")

    @property
    def code_text(self) -> str:
        """The type (and modifier) as scheme^value^meaning, for tables."""
        return _slicer_code(self.type) + (f"~{_slicer_code(self.modifier)}" if self.modifier else "")


def segment_style(description: str, name: str | None = None) -> SegmentStyle:
    """Name, codes and colour for a target description such as 'right kidney in CT'."""
    from pydicom.sr.codedict import codes

    display_name = name or short_name(description)
    words = _words(display_name) or _words(description)
    found = _best_concept(words) or _best_concept(_words(description))
    if found is None:
        generic = codes.cid7150.AnatomicalStructure
        return SegmentStyle(display_name, _colour(display_name.lower()), generic, generic, known=False)
    concept, category, span = found
    side = next((_SIDES[w] for position, w in enumerate(words) if w in _SIDES and position not in span), None)
    modifier = getattr(codes.cid244, side) if side else None
    return SegmentStyle(display_name, _colour(concept.value), getattr(codes.cid7150, category), concept, modifier)


def short_name(description: str) -> str:
    """'right kidney in abdomen CT' -> 'right kidney': the part before a context phrase."""
    text = description.strip()
    short = re.split(r"\s+(?:in|on|of the|from)\s+(?:an?\s+|the\s+)?(?:\w+\s+)?(?:ct|mri?|mr|scan|image|volume)\b", text, flags=re.I)[0]
    return short.strip() or text or "Segment"


def _words(text: str) -> list[str]:
    return [_SPELLINGS.get(w, w) for w in re.findall(r"[a-z0-9]+", text.lower())]


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _best_concept(words: list[str]):
    """(concept, category keyword, word positions it covers) of the longest concept whose
    meaning appears in `words`, the last one on a tie; None when none does."""
    typed = [_singular(w) for w in words]
    best = None
    for meaning_words, concept, category in _concepts():
        length = len(meaning_words)
        for start in range(len(typed) - length + 1):
            if typed[start : start + length] == meaning_words:
                rank = (length, start)
                if best is None or rank > best[0]:
                    best = (rank, concept, category, set(range(start, start + length)))
    return None if best is None else best[1:]


@functools.cache
def _concepts() -> list[tuple[list[str], Code, str]]:
    """Every SNOMED CT concept of CID 7151, with its meaning's words and its category."""
    from pydicom.sr._cid_dict import cid_concepts
    from pydicom.sr.codedict import codes

    category_of = {}
    for cid, category in _CATEGORY_OF_CID.items():
        for keyword in cid_concepts[cid].get("SCT", []):
            category_of.setdefault(keyword, category)
    concepts = []
    for keyword in cid_concepts[_TYPE_CID]["SCT"]:
        concept = getattr(codes.cid7151, keyword)
        meaning_words = [_singular(w) for w in _words(concept.meaning)]
        concepts.append((meaning_words, concept, category_of.get(keyword, "AnatomicalStructure")))
    return concepts


def _colour(key: str) -> tuple[float, float, float]:
    number = int(key) if key.isdigit() else sum((index + 1) * ord(ch) for index, ch in enumerate(key))
    hue = (number * _GOLDEN_ANGLE) % 1.0
    return tuple(round(c, 4) for c in colorsys.hsv_to_rgb(hue, 0.55, 0.85))


def _slicer_code(code: Code) -> str:
    return f"{code.scheme_designator}^{code.value}^{code.meaning}"
