"""Import registry exports (CSV / Excel) into the canonical table via a YAML mapping.

A mapping file says how a centre's export differs from the canonical schema::

    source: "Centre B registry export, 2024"
    sheet: 0                      # Excel only: sheet name or index
    columns:                      # source column -> canonical column
      PatientID: patient_id
      TBIL: bilirubin_umol_l
      ALB: albumin_g_l
      "AFP>400": afp_ge_400
    drop: [Comments]              # source columns deliberately ignored
    constants:                    # canonical column -> value for every row
      centre: B
    units:                        # canonical column -> unit used in the source
      bilirubin_umol_l: mg/dL
      albumin_g_l: g/dL
    values:                       # canonical column -> {source value: canonical value}
      sex: {male: M, female: F}
    dates:
      format: "%d/%m/%Y"          # default for every date column
      columns: {surgery_date: "%Y%m%d"}

:func:`import_table` applies the mapping, converts units, parses dates and validates
the result against :mod:`hccstrat.schema`. Every problem in the file is collected
into one :class:`~hccstrat.exceptions.ValidationReport`; nothing is returned or
written unless the whole file is valid.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hccstrat.exceptions import (
    DataValidationError,
    InputFileError,
    MappingError,
    Problem,
    ValidationReport,
)
from hccstrat.io.atomic import atomic_write
from hccstrat.io.tables import csv_delimiter
from hccstrat.schema import COLUMNS, spec, validate

__all__ = [
    "UNIT_FACTORS",
    "ImportMapping",
    "apply_mapping",
    "import_table",
    "load_mapping",
    "read_canonical",
    "read_source",
    "write_canonical",
]

#: Multiplicative factors from a source unit to the canonical unit, per column.
#: Sources: SI conversion factors (bilirubin 17.104 µmol/L per mg/dL; creatinine
#: 88.42 µmol/L per mg/dL; AFP 1 IU/mL = 1.21 ng/mL, WHO 72/225 standard).
UNIT_FACTORS: dict[str, dict[str, float]] = {
    "bilirubin_umol_l": {"umol/L": 1.0, "µmol/L": 1.0, "mg/dL": 17.104, "mg/L": 1.7104},
    "albumin_g_l": {"g/L": 1.0, "g/dL": 10.0},
    "afp_ng_ml": {"ng/mL": 1.0, "ug/L": 1.0, "µg/L": 1.0, "IU/mL": 1.21, "kIU/L": 1.21},
    "creatinine_umol_l": {"umol/L": 1.0, "µmol/L": 1.0, "mg/dL": 88.42},
    "platelets_10e9_l": {"10^9/L": 1.0, "10^3/uL": 1.0, "10^3/µL": 1.0, "/uL": 1e-3, "/µL": 1e-3},
    "tumour_size_cm": {"cm": 1.0, "mm": 0.1},
    "margin_mm": {"mm": 1.0, "cm": 10.0},
    "weight_kg": {"kg": 1.0, "lb": 0.45359237},
    "height_cm": {"cm": 1.0, "m": 100.0, "in": 2.54},
    "inr": {"1": 1.0},
    "age": {"years": 1.0},
}

_DATE_COLUMNS = [c.name for c in COLUMNS if c.kind == "date"]


def _is_date_format(fmt: str) -> bool:
    """Whether ``fmt`` is strptime codes that read back a date they wrote.

    Catches unknown directives (``%Q``, an internal error in pandas) and formats
    written as ``dd/mm/yyyy`` (no directive: every date in the file would be refused).
    """
    probe = datetime(2001, 2, 3, 4, 5, 6)
    try:
        datetime.strptime(probe.strftime(fmt), fmt)
    except ValueError:
        return False
    return "%" in fmt


class DateSpec(BaseModel):
    """Date formats (strptime codes) of the source."""

    model_config = ConfigDict(extra="forbid")
    format: str = "%Y-%m-%d"
    columns: dict[str, str] = Field(default_factory=dict)


class ImportMapping(BaseModel):
    """Parsed YAML mapping file (see module docstring)."""

    model_config = ConfigDict(extra="forbid")
    source: str | None = None
    sheet: str | int | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)
    constants: dict[str, Any] = Field(default_factory=dict)
    units: dict[str, str] = Field(default_factory=dict)
    values: dict[str, dict[Any, Any]] = Field(default_factory=dict)
    dates: DateSpec = Field(default_factory=DateSpec)

    def check(self, where: str) -> None:
        """Refuse mappings to unknown canonical columns or unknown units."""
        errors = []
        canon = {c.name for c in COLUMNS}
        targets = list(self.columns.values()) + list(self.constants) + list(self.units)
        targets += list(self.values) + list(self.dates.columns)
        for t in targets:
            if t not in canon:
                errors.append(f"'{t}' is not a canonical column")
        for col, unit in self.units.items():
            allowed = UNIT_FACTORS.get(col)
            if allowed is None and col in canon:
                errors.append(f"column '{col}' has no unit to convert")
            elif allowed is not None and unit not in allowed:
                errors.append(f"unit '{unit}' for '{col}' is unknown; known: {', '.join(allowed)}")
        for col in self.dates.columns:
            if col in canon and spec(col).kind != "date":
                errors.append(f"'{col}' is not a date column")
        for col, fmt in [("dates.format", self.dates.format), *self.dates.columns.items()]:
            if not _is_date_format(fmt):
                errors.append(f"date format {fmt!r} ({col}) is not strptime codes like '%d/%m/%Y'")
        dup = pd.Series(list(self.columns.values()))
        for t in sorted(set(dup[dup.duplicated()])):
            errors.append(f"canonical column '{t}' is mapped from more than one source column")
        if errors:
            raise MappingError(
                f"mapping file {where} is invalid: " + "; ".join(errors),
                hint="use the canonical names and units listed in the README section 'Data "
                "formats', and strptime codes (%d, %m, %Y) for dates",
            )


def load_mapping(path: str | os.PathLike | None) -> ImportMapping:
    """Read and check a YAML mapping file; ``None`` gives the identity mapping."""
    if path is None:
        return ImportMapping()
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"mapping file '{path}' not found", hint="check the --mapping path")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise MappingError(f"mapping file '{path}' is not valid YAML: {exc}") from exc
    try:
        mapping = ImportMapping.model_validate(raw)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise MappingError(
            f"mapping file '{path}' has invalid entries: {msgs}",
            hint="allowed keys: source, sheet, columns, drop, constants, units, values, dates",
        ) from exc
    mapping.check(f"'{path}'")
    return mapping


def read_source(path: str | os.PathLike, sheet: str | int | None = None) -> pd.DataFrame:
    """Read a CSV, TSV or Excel file as text columns (no type guessing)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"input file '{path}' not found", hint="check the path")
    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm", ".xls"):
            return pd.read_excel(path, sheet_name=sheet or 0, dtype=object)
        sep = "\t" if suffix in (".tsv", ".tab") else csv_delimiter(path)
        return pd.read_csv(path, dtype=str, keep_default_na=True, sep=sep, encoding="utf-8-sig")
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputFileError(
            f"cannot read '{path}': {exc}",
            hint="export the registry as UTF-8 CSV or .xlsx with one header row",
        ) from exc


def _unit_hint(column: str, values: pd.Series) -> str:
    """Suggest the unit under which out-of-range values would be plausible."""
    lo, hi = spec(column).bounds or (-np.inf, np.inf)
    for unit, factor in UNIT_FACTORS.get(column, {}).items():
        if factor == 1.0:
            continue
        conv = values * factor
        if ((conv >= lo) & (conv <= hi)).all():
            return (
                f"; the values look like {unit}: add `units: {{{column}: {unit}}}` to the mapping"
            )
    return ""


def apply_mapping(
    raw: pd.DataFrame, mapping: ImportMapping
) -> tuple[pd.DataFrame, ValidationReport]:
    """Rename, map values, convert units and parse dates; collect problems.

    Returns the canonical-named table (not yet validated) and the problems found
    on the way (unknown columns, unparseable dates, unknown category values).
    """
    report = ValidationReport(source=mapping.source)
    canon = {c.name for c in COLUMNS}
    df = raw.copy()
    df.columns = [str(c).strip() for c in df.columns]
    missing_src = [c for c in mapping.columns if c not in df.columns]
    for c in missing_src:
        report.add(
            Problem(None, None, c, "(missing column)", "this source column named in the mapping")
        )
    unknown = [
        c
        for c in df.columns
        if c not in mapping.columns and c not in mapping.drop and c not in canon
    ]
    for c in unknown:
        report.add(
            Problem(
                None,
                None,
                c,
                "(column)",
                "a canonical column, a `columns:` entry or a `drop:` entry",
            )
        )
    df = df.drop(columns=[c for c in df.columns if c in mapping.drop or c in unknown])
    df = df.rename(columns=mapping.columns)
    for col, value in mapping.constants.items():
        df[col] = value
    pid = (
        df["patient_id"]
        if "patient_id" in df.columns
        else pd.Series([None] * len(df), index=df.index)
    )

    for col, table in mapping.values.items():
        if col not in df.columns:
            continue
        key = df[col].astype("string").str.strip()
        lookup = {str(k).strip().lower(): v for k, v in table.items()}
        mapped = key.str.lower().map(lookup)
        df[col] = mapped.where(mapped.notna(), key).astype(object)

    for col, unit in mapping.units.items():
        if col not in df.columns:
            continue
        num = pd.to_numeric(df[col], errors="coerce")
        # non-numeric text is kept as is so that validation reports it
        df[col] = (num * UNIT_FACTORS[col][unit]).astype(object).where(num.notna(), df[col])

    for col in [c for c in _DATE_COLUMNS if c in df.columns]:
        fmt = mapping.dates.columns.get(col, mapping.dates.format)
        if pd.api.types.is_datetime64_any_dtype(df[col]):
            continue
        txt = df[col].astype("string").str.strip()
        txt = txt.mask(txt == "")
        # Excel may hand back real datetimes mixed with text: format those first
        parsed = pd.to_datetime(txt, format=fmt, errors="coerce")
        for idx in df.index[parsed.isna() & txt.notna()]:
            pos = df.index.get_loc(idx) + 1
            report.add(
                Problem(pos, _str_or_none(pid[idx]), col, txt[idx], f"a date in the format {fmt!r}")
            )
        df[col] = parsed.dt.strftime("%Y-%m-%d").where(parsed.notna())
    return df, report


def _str_or_none(v) -> str | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) or pd.isna(v) else str(v)


def import_table(
    path: str | os.PathLike,
    mapping: str | os.PathLike | ImportMapping | None = None,
) -> pd.DataFrame:
    """Import a registry export into a validated canonical table.

    Parameters
    ----------
    path : path-like
        CSV, TSV or Excel file, one row per patient.
    mapping : path-like or ImportMapping, optional
        YAML mapping file (see module docstring). Without one, the file must use
        canonical column names and units.

    Returns
    -------
    DataFrame
        Canonical, typed table (categorical versions filled in).

    Raises
    ------
    InputFileError
        When the file cannot be read or has no patient rows.
    DataValidationError
        Listing every problem in the file (row, patient id, column, value, expected).
    """
    m = mapping if isinstance(mapping, ImportMapping) else load_mapping(mapping)
    raw = read_source(path, m.sheet)
    if raw.empty:
        raise InputFileError(
            f"'{path}' has no patient rows", hint="export one row per patient below the header"
        )
    df, report = apply_mapping(raw, m)
    table, vreport = validate(df, source=str(path))
    # add unit hints to out-of-range values
    for p in vreport.problems:
        if "outside the possible range" in p.expected and p.column in UNIT_FACTORS:
            try:
                hint = _unit_hint(p.column, pd.Series([float(p.value)]))
            except (TypeError, ValueError):
                hint = ""
            report.add(Problem(p.row, p.patient_id, p.column, p.value, p.expected + hint))
        else:
            report.add(p)
    report.source = str(path)
    report.problems.sort(key=lambda p: (p.row is not None, p.row or 0, p.column))
    if report:
        raise DataValidationError(report)
    return table


def write_canonical(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a canonical table as CSV (ISO dates), atomically."""
    path = Path(path)
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%d")
    with atomic_write(path, newline="") as fh:
        out.to_csv(fh, index=False)
    return path


def read_canonical(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a canonical CSV written by :func:`write_canonical`."""
    return import_table(path, None)
