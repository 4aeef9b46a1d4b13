"""Canonical clinical columns: names, kinds, units, bounds, categories and cut-offs.

The table :data:`COLUMNS` is the single definition of a patient record; the public
names are re-exported by :mod:`hccstrat.schema`, which also validates tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

__all__ = ["COLUMNS", "DAYS_PER_MONTH", "ColumnSpec", "Cutoff", "canonical_columns", "spec"]

Kind = Literal["str", "float", "int", "bool", "category", "date"]

#: Days per month used everywhere times are expressed in months (365.25 / 12).
DAYS_PER_MONTH = 30.4375


@dataclass(frozen=True)
class Cutoff:
    """Cut-off that defines a categorical version of a numeric variable.

    ``value`` of ``source`` compared with ``op`` gives ``True``.
    """

    source: str
    op: Literal[">=", ">"]
    value: float

    def apply(self, x: pd.Series) -> pd.Series:
        """Dichotomise ``x``; missing stays missing."""
        out = (x >= self.value) if self.op == ">=" else (x > self.value)
        return out.where(x.notna()).astype("boolean")

    def __str__(self) -> str:
        return f"{self.source} {self.op} {self.value:g}"


@dataclass(frozen=True)
class ColumnSpec:
    """Specification of one canonical column.

    Attributes
    ----------
    name : str
        Canonical column name.
    kind : {"str", "float", "int", "bool", "category", "date"}
        Logical type.
    group : str
        Section of the record (identity, demographics, labs, ...).
    description : str
        What the column holds.
    unit : str or None
        Unit of numeric columns (UCUM-like spelling).
    bounds : tuple of float or None
        Physiologically possible range ``(low, high)``, inclusive. Values outside are
        rejected as impossible (often a unit error: albumin 400 g/L is 40 g/dL read
        as g/L... or a typo).
    categories : tuple of str or None
        Allowed values of categorical columns.
    required : bool
        Whether the column must be present and non-missing.
    derived_from : Cutoff or None
        For categorical versions of a numeric variable: the cut-off.
    """

    name: str
    kind: Kind
    group: str
    description: str
    unit: str | None = None
    bounds: tuple[float, float] | None = None
    categories: tuple[str, ...] | None = None
    required: bool = False
    derived_from: Cutoff | None = None

    def expected(self) -> str:
        """Plain-language description of the accepted values."""
        if self.kind in ("float", "int"):
            txt = "an integer" if self.kind == "int" else "a number"
            if self.unit:
                txt += f" in {self.unit}"
            if self.bounds:
                txt += f" between {self.bounds[0]:g} and {self.bounds[1]:g}"
            return txt
        if self.kind == "bool":
            return "true/false (also yes/no, 1/0)"
        if self.kind == "category":
            return "one of " + ", ".join(repr(c) for c in self.categories or ())
        if self.kind == "date":
            return "a date (ISO 8601, YYYY-MM-DD)"
        return "a non-empty text"


def _c(*args, **kwargs) -> ColumnSpec:
    return ColumnSpec(*args, **kwargs)


#: Every canonical column, in display order.
COLUMNS: tuple[ColumnSpec, ...] = (
    # identity
    _c("patient_id", "str", "identity", "Pseudonymised patient identifier, unique", required=True),
    _c("centre", "str", "identity", "Treating centre code", required=True),
    # demographics
    _c("age", "float", "demographics", "Age at surgery", "years", (0, 120)),
    _c("sex", "category", "demographics", "Sex", categories=("M", "F")),
    _c("weight_kg", "float", "demographics", "Body weight", "kg", (20, 300)),
    _c("height_cm", "float", "demographics", "Height", "cm", (100, 230)),
    _c("ecog", "int", "demographics", "ECOG performance status", None, (0, 4)),
    # aetiology and liver
    _c(
        "aetiology",
        "category",
        "liver",
        "Main aetiology of liver disease",
        categories=("HBV", "HCV", "alcohol", "MASLD", "other"),
    ),
    _c("cirrhosis", "bool", "liver", "Cirrhosis (clinical, imaging or histology)"),
    _c("portal_hypertension", "bool", "liver", "Clinically significant portal hypertension"),
    _c(
        "ascites",
        "category",
        "liver",
        "Ascites (Child-Pugh grading)",
        categories=("none", "mild", "moderate_severe"),
    ),
    _c(
        "encephalopathy",
        "category",
        "liver",
        "Hepatic encephalopathy (Child-Pugh grading)",
        categories=("none", "grade_1_2", "grade_3_4"),
    ),
    # laboratory values
    _c("bilirubin_umol_l", "float", "labs", "Total bilirubin", "umol/L", (0, 1000)),
    _c("albumin_g_l", "float", "labs", "Serum albumin", "g/L", (5, 70)),
    _c("inr", "float", "labs", "International normalised ratio", "1", (0.5, 10)),
    _c("platelets_10e9_l", "float", "labs", "Platelet count", "10^9/L", (1, 2000)),
    _c("afp_ng_ml", "float", "labs", "Alpha-fetoprotein", "ng/mL", (0, 5e6)),
    _c("creatinine_umol_l", "float", "labs", "Serum creatinine", "umol/L", (10, 2000)),
    _c(
        "afp_ge_400",
        "bool",
        "labs",
        "AFP >= 400 ng/mL (categorical version of afp_ng_ml)",
        derived_from=Cutoff("afp_ng_ml", ">=", 400),
    ),
    # tumour burden (pre-operative)
    _c("tumour_size_cm", "float", "tumour", "Diameter of the largest tumour", "cm", (0.1, 40)),
    _c("tumour_number", "int", "tumour", "Number of tumour nodules", None, (1, 50)),
    _c(
        "tumour_size_gt_5cm",
        "bool",
        "tumour",
        "Largest tumour > 5 cm (categorical version of tumour_size_cm)",
        derived_from=Cutoff("tumour_size_cm", ">", 5),
    ),
    _c(
        "tumour_multiple",
        "bool",
        "tumour",
        "More than one nodule (categorical version of tumour_number)",
        derived_from=Cutoff("tumour_number", ">=", 2),
    ),
    _c("macrovascular_invasion", "bool", "tumour", "Macrovascular invasion on imaging"),
    _c("extrahepatic_spread", "bool", "tumour", "Extrahepatic spread (nodes or metastases)"),
    _c(
        "bclc_recorded",
        "category",
        "tumour",
        "BCLC stage as recorded by the centre (used when inputs to compute it are missing)",
        categories=("0", "A", "B", "C", "D"),
    ),
    # pre-operative imaging
    _c("mri_date", "date", "imaging", "Date of the pre-operative 4-phase MRI"),
    _c("mri_rim_aphe", "bool", "imaging", "Rim arterial-phase hyper-enhancement"),
    _c("mri_nonsmooth_margin", "bool", "imaging", "Non-smooth tumour margin"),
    _c("mri_washout", "bool", "imaging", "Washout in portal venous / delayed phase"),
    _c("mri_capsule", "bool", "imaging", "Enhancing capsule"),
    _c("mri_peritumoral_enh", "bool", "imaging", "Peritumoral arterial enhancement"),
    # pathology
    _c(
        "histology",
        "category",
        "pathology",
        "Histological type of the resected tumour",
        categories=("HCC", "ICC", "cHCC-CCA", "other"),
    ),
    _c("mvi", "bool", "pathology", "Microvascular invasion"),
    _c("satellite_nodules", "bool", "pathology", "Satellite nodules"),
    _c("edmondson_grade", "int", "pathology", "Edmondson-Steiner grade", None, (1, 4)),
    _c("margin_status", "category", "pathology", "Resection margin", categories=("R0", "R1")),
    _c("margin_mm", "float", "pathology", "Closest resection margin", "mm", (0, 200)),
    _c(
        "capsule_pathology",
        "category",
        "pathology",
        "Tumour capsule on histology",
        categories=("complete", "incomplete", "absent"),
    ),
    # treatments
    _c("surgery_date", "date", "treatment", "Date of curative resection"),
    _c(
        "neoadjuvant",
        "category",
        "treatment",
        "Neoadjuvant therapy before resection",
        categories=("none", "HAIC+LEN+PD1"),
    ),
    _c("neoadjuvant_start_date", "date", "treatment", "Start of neoadjuvant therapy"),
    _c(
        "adjuvant",
        "category",
        "treatment",
        "Adjuvant regimen after resection",
        categories=("surgery_alone", "TACE", "TACE+TKI"),
    ),
    _c("adjuvant_start_date", "date", "treatment", "Start of adjuvant therapy"),
    # outcomes
    _c("recurrence", "bool", "outcome", "Recurrence observed"),
    _c("recurrence_date", "date", "outcome", "Date recurrence was diagnosed"),
    _c(
        "recurrence_site",
        "category",
        "outcome",
        "Site of first recurrence",
        categories=("intrahepatic", "extrahepatic", "both"),
    ),
    _c(
        "recurrence_pattern",
        "category",
        "outcome",
        "Pattern of first recurrence",
        categories=("solitary", "oligonodular", "multinodular", "infiltrative", "macrovascular"),
    ),
    _c("recurrence_nodules", "int", "outcome", "Number of recurrent nodules", None, (1, 100)),
    _c("death", "bool", "outcome", "Death observed"),
    _c("death_date", "date", "outcome", "Date of death"),
    _c("last_followup_date", "date", "outcome", "Date last known alive / last assessment"),
    _c(
        "neoadjuvant_response",
        "category",
        "outcome",
        "Best mRECIST response to neoadjuvant therapy",
        categories=("CR", "PR", "SD", "PD", "NE"),
    ),
)

_BY_NAME = {c.name: c for c in COLUMNS}


def spec(name: str) -> ColumnSpec:
    """Return the :class:`ColumnSpec` of a canonical column.

    Raises
    ------
    KeyError
        If ``name`` is not a canonical column.
    """
    return _BY_NAME[name]


def canonical_columns(group: str | None = None) -> list[str]:
    """Names of the canonical columns, optionally of one group only."""
    return [c.name for c in COLUMNS if group is None or c.group == group]
