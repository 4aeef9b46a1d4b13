"""Canonical clinical schema: the columns a patient record has, with units.

One row per patient. Every numeric column carries its unit in its name
(``bilirubin_umol_l``) and in :attr:`ColumnSpec.unit`; imports convert other units
to these (see :mod:`hccstrat.clinical.importer`). Registries that hold only a
category where the schema wants a number (AFP >= 400 ng/mL yes/no, tumour
> 5 cm yes/no, a recorded stage group) fill the *categorical version* of the
variable (:attr:`ColumnSpec.derived_from` names the number and its cut-off); scores
and models use whichever is present and say which they lacked.

:func:`validate` checks a table and returns a :class:`~hccstrat.exceptions.ValidationReport`
listing every problem with its row, patient id, column, value and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from hccstrat.exceptions import DataValidationError, Problem, ValidationReport

__all__ = [
    "COLUMNS",
    "DAYS_PER_MONTH",
    "ColumnSpec",
    "Cutoff",
    "canonical_columns",
    "coerce",
    "fill_categorical_versions",
    "spec",
    "validate",
    "validate_or_raise",
]

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

_TRUE = {"true", "t", "yes", "y", "1", "1.0", "positive", "pos", "present"}
_FALSE = {"false", "f", "no", "n", "0", "0.0", "negative", "neg", "absent"}


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


def _row_label(df: pd.DataFrame, idx) -> tuple[int | None, str | None]:
    pos = df.index.get_loc(idx)
    row = int(pos) + 1 if isinstance(pos, (int, np.integer)) else None
    pid = df.at[idx, "patient_id"] if "patient_id" in df.columns else None
    return row, (None if pd.isna(pid) else str(pid))


def coerce(df: pd.DataFrame, report: ValidationReport | None = None) -> pd.DataFrame:
    """Convert columns to their canonical dtypes, recording unparseable values.

    Booleans accept true/false, yes/no, 1/0; dates must be ISO 8601 (importers
    parse other formats before calling this). Unknown columns are left alone.
    """
    report = report if report is not None else ValidationReport()
    out = df.copy()
    for name in out.columns:
        cs = _BY_NAME.get(name)
        if cs is None:
            continue
        col = out[name]
        if cs.kind in ("float", "int"):
            num = pd.to_numeric(col, errors="coerce")
            bad = num.isna() & col.notna() & (col.astype(str).str.strip() != "")
            if cs.kind == "int":
                frac = num.notna() & (num != np.round(num))
                bad |= frac
                num = num.where(~frac)
            for idx in out.index[bad]:
                row, pid = _row_label(out, idx)
                report.add(Problem(row, pid, name, col[idx], cs.expected()))
            out[name] = num.astype("Int64") if cs.kind == "int" else num.astype(float)
        elif cs.kind == "bool":
            if pd.api.types.is_bool_dtype(col):
                out[name] = col.astype("boolean")
                continue
            txt = col.astype("string").str.strip().str.lower()
            val = pd.Series(pd.NA, index=col.index, dtype="boolean")
            val[txt.isin(_TRUE).fillna(False).astype(bool)] = True
            val[txt.isin(_FALSE).fillna(False).astype(bool)] = False
            bad = val.isna() & col.notna() & (txt.fillna("") != "")
            for idx in out.index[bad]:
                row, pid = _row_label(out, idx)
                report.add(Problem(row, pid, name, col[idx], cs.expected()))
            out[name] = val
        elif cs.kind == "category":
            txt = col.astype("string").str.strip()
            txt = txt.mask(txt == "")
            # numeric-looking categories ("0", "1.0") compare as text without ".0"
            txt = txt.str.replace(r"^(\d+)\.0$", r"\1", regex=True)
            bad = txt.notna() & ~txt.isin(cs.categories or ()).fillna(False).astype(bool)
            for idx in out.index[bad]:
                row, pid = _row_label(out, idx)
                report.add(Problem(row, pid, name, col[idx], cs.expected()))
            out[name] = pd.Categorical(txt.where(~bad), categories=list(cs.categories or ()))
        elif cs.kind == "date":
            if pd.api.types.is_datetime64_any_dtype(col):
                out[name] = col.astype("datetime64[ns]")
                continue
            txt = col.astype("string").str.strip()
            txt = txt.mask(txt == "")
            parsed = pd.to_datetime(txt, format="%Y-%m-%d", errors="coerce")
            bad = parsed.isna() & txt.notna()
            for idx in out.index[bad]:
                row, pid = _row_label(out, idx)
                report.add(Problem(row, pid, name, col[idx], cs.expected()))
            out[name] = parsed
        else:
            txt = col.astype("string").str.strip()
            out[name] = txt.mask(txt == "")
    return out


def fill_categorical_versions(df: pd.DataFrame) -> pd.DataFrame:
    """Fill categorical versions (``afp_ge_400``...) from their numeric source.

    Values already present are kept when the number is missing; where both are
    present they must agree (checked by :func:`validate`).
    """
    out = df.copy()
    for cs in COLUMNS:
        if cs.derived_from is None or cs.derived_from.source not in out.columns:
            continue
        derived = cs.derived_from.apply(out[cs.derived_from.source].astype(float))
        if cs.name in out.columns:
            out[cs.name] = derived.fillna(out[cs.name].astype("boolean"))
        else:
            out[cs.name] = derived
    return out


def _cross_field_problems(df: pd.DataFrame) -> list[Problem]:
    problems: list[Problem] = []

    def flag(mask: pd.Series, column: str, expected: str) -> None:
        mask = mask.fillna(False).astype(bool)
        for idx in df.index[mask]:
            row, pid = _row_label(df, idx)
            value = df.at[idx, column] if column in df.columns else None
            problems.append(Problem(row, pid, column, value, expected))

    has = df.columns.__contains__
    if has("surgery_date"):
        for col in ("recurrence_date", "death_date", "last_followup_date", "adjuvant_start_date"):
            if has(col):
                flag(
                    df[col] < df["surgery_date"],
                    col,
                    f"a date on or after surgery_date ({col} before surgery is impossible)",
                )
        if has("neoadjuvant_start_date"):
            flag(
                df["neoadjuvant_start_date"] > df["surgery_date"],
                "neoadjuvant_start_date",
                "a date on or before surgery_date",
            )
    nodate = pd.Series(pd.NaT, index=df.index)
    if has("recurrence"):
        flag(
            df["recurrence"].eq(True) & df.get("recurrence_date", nodate).isna(),
            "recurrence_date",
            "a date, because recurrence is true",
        )
        flag(
            df["recurrence"].eq(False) & df.get("recurrence_date", nodate).notna(),
            "recurrence",
            "true, because a recurrence_date is given",
        )
    if has("death"):
        flag(
            df["death"].eq(True) & df.get("death_date", nodate).isna(),
            "death_date",
            "a date, because death is true",
        )
        flag(
            df["death"].eq(False) & df.get("death_date", nodate).notna(),
            "death",
            "true, because a death_date is given",
        )
    if has("death_date"):
        for col in ("recurrence_date", "last_followup_date"):
            if has(col):
                flag(df[col] > df["death_date"], col, "a date on or before death_date")
    if has("last_followup_date") and has("recurrence_date"):
        flag(
            df["recurrence_date"] > df["last_followup_date"],
            "recurrence_date",
            "a date on or before last_followup_date",
        )
    # categorical versions must agree with their number when both are given
    for cs in COLUMNS:
        cut = cs.derived_from
        if cut is None or not (has(cs.name) and has(cut.source)):
            continue
        derived = cut.apply(df[cut.source].astype(float))
        given = df[cs.name].astype("boolean")
        flag(
            derived.notna() & given.notna() & (derived != given),
            cs.name,
            f"agreement with {cut} (computed from the numeric value)",
        )
    if has("margin_status") and has("margin_mm"):
        flag(
            df["margin_status"].eq("R1") & (df["margin_mm"] > 0),
            "margin_mm",
            "0 mm, because margin_status is R1",
        )
    return problems


def validate(
    df: pd.DataFrame, *, source: str | None = None
) -> tuple[pd.DataFrame, ValidationReport]:
    """Validate and coerce a table against the canonical schema.

    Parameters
    ----------
    df : DataFrame
        One row per patient, canonical column names. Extra columns are reported.
    source : str, optional
        Name of the input (file) used in messages.

    Returns
    -------
    table : DataFrame
        Coerced table with categorical versions filled in.
    report : ValidationReport
        Every problem found (empty when the table is valid).
    """
    report = ValidationReport(source=source)
    unknown = [c for c in df.columns if c not in _BY_NAME]
    for c in unknown:
        report.add(
            Problem(
                None, None, c, "(column)", "a canonical column name or a mapping in the YAML file"
            )
        )
    for cs in COLUMNS:
        if cs.required and cs.name not in df.columns:
            report.add(Problem(None, None, cs.name, "(missing column)", "this required column"))
    table = coerce(df[[c for c in df.columns if c in _BY_NAME]], report)
    for cs in COLUMNS:
        if cs.name not in table.columns:
            continue
        col = table[cs.name]
        if cs.required:
            for idx in table.index[col.isna()]:
                row, pid = _row_label(table, idx)
                report.add(Problem(row, pid, cs.name, None, f"{cs.expected()} (required)"))
        if cs.bounds is not None:
            lo, hi = cs.bounds
            out = col.notna() & ((col < lo) | (col > hi))
            for idx in table.index[out.fillna(False).astype(bool)]:
                row, pid = _row_label(table, idx)
                report.add(
                    Problem(
                        row, pid, cs.name, col[idx], cs.expected() + " (outside the possible range)"
                    )
                )
                table.at[idx, cs.name] = np.nan
    if "patient_id" in table.columns:
        dup = table["patient_id"].duplicated(keep=False) & table["patient_id"].notna()
        for idx in table.index[dup]:
            row, pid = _row_label(table, idx)
            report.add(Problem(row, pid, "patient_id", pid, "a patient id that occurs once"))
    report.extend(_cross_field_problems(table))
    report.problems.sort(key=lambda p: (p.row is not None, p.row or 0, p.column))
    return fill_categorical_versions(table), report


def validate_or_raise(df: pd.DataFrame, *, source: str | None = None) -> pd.DataFrame:
    """Like :func:`validate` but raise :class:`DataValidationError` on any problem."""
    table, report = validate(df, source=source)
    if report:
        raise DataValidationError(report)
    return table
