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

import re

import numpy as np
import pandas as pd

from hccstrat._columns import (
    _BY_NAME,
    COLUMNS,
    DAYS_PER_MONTH,
    ColumnSpec,
    Cutoff,
    canonical_columns,
    spec,
)
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

_DECIMAL_COMMA = re.compile(r"\s*-?\d+,\d+\s*")  # 12,5: a decimal comma, not a number here
_TRUE = {"true", "t", "yes", "y", "1", "1.0", "positive", "pos", "present"}
_FALSE = {"false", "f", "no", "n", "0", "0.0", "negative", "neg", "absent"}


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
                expected = cs.expected()
                if _DECIMAL_COMMA.fullmatch(str(col[idx])):
                    expected += " with a decimal point (12.5, not 12,5)"
                report.add(Problem(row, pid, name, col[idx], expected))
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
