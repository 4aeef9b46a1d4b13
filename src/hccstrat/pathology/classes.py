"""Tissue-region classes shared by annotations, label masks and the tile classifier.

One code table for every H&E region label: QuPath/GeoJSON annotations, the
synthetic slides' ground-truth masks and the tile classifier's training labels.
"""

from __future__ import annotations

__all__ = ["CLASS_CODES", "CLASS_NAMES", "REGION_CLASSES"]

#: class code → region name (code 8 marks pen ink and other artefacts)
CLASS_CODES: dict[int, str] = {
    0: "background",
    1: "tumour",
    2: "stroma",
    3: "immune_dense",
    4: "necrosis",
    5: "normal_liver",
    6: "vessel",
    7: "vessel_tumour_thrombus",
    8: "pen_artefact",
}
#: region name → class code
CLASS_NAMES: dict[str, int] = {v: k for k, v in CLASS_CODES.items()}
#: region names in code order (code = index)
REGION_CLASSES: list[str] = [CLASS_CODES[k] for k in sorted(CLASS_CODES)]
