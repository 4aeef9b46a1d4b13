"""Assembly of the canonical clinical table from baseline, assignment and outcome draws."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hccstrat.exceptions import ConfigError
from hccstrat.schema import COLUMNS, DAYS_PER_MONTH, spec
from hccstrat.synthetic._outcomes import ARMS, NEOADJUVANT_REGIMEN

__all__ = ["assignment_arrays", "with_outcomes"]


def _days(months: np.ndarray) -> pd.TimedeltaIndex:
    return pd.to_timedelta(np.floor(np.asarray(months, float) * DAYS_PER_MONTH), unit="D")


def with_outcomes(
    base: pd.DataFrame, latent: pd.DataFrame, adjuvant: np.ndarray, neo: np.ndarray, d: dict
) -> pd.DataFrame:
    """Canonical clinical table: baseline + treatment + outcome columns, coerced."""
    out = base.copy()
    surgery = pd.DatetimeIndex(out["surgery_date"])
    gap = pd.to_timedelta(latent["mri_gap_days"].to_numpy(), unit="D")
    neo_start = surgery - pd.to_timedelta(d["neoadjuvant_lead_days"], unit="D")
    out["mri_date"] = np.where(neo, neo_start - gap, surgery - gap)
    out["neoadjuvant"] = np.where(neo, NEOADJUVANT_REGIMEN, "none")
    out["neoadjuvant_start_date"] = neo_start.where(neo)
    out["adjuvant"] = adjuvant
    delay = d["adjuvant_delay_days"]
    started = (adjuvant != "surgery_alone") & (d["t_followup"] * DAYS_PER_MONTH > delay)
    out["adjuvant_start_date"] = (surgery + pd.to_timedelta(delay, unit="D")).where(started)
    out["recurrence"] = d["recurrence"]
    out["recurrence_date"] = surgery + _days(d["t_recurrence"])
    out["recurrence_site"] = d["site"]
    out["recurrence_pattern"] = d["pattern"]
    out["recurrence_nodules"] = d["nodules"]
    out["death"] = d["death"]
    out["death_date"] = surgery + _days(d["t_death"])
    out["last_followup_date"] = surgery + _days(d["t_followup"])
    out["neoadjuvant_response"] = d["response"]
    order = [c.name for c in COLUMNS if c.name in out.columns]
    return _canonical_dtypes(out[order].reset_index(drop=True))


def _canonical_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    """Give generated (already valid) columns the dtypes :func:`hccstrat.schema.coerce`
    produces, without its per-value parsing (fast for 100,000 patients)."""
    out = {}
    for name in df.columns:
        cs = spec(name)
        col = df[name]
        if cs.kind == "float":
            out[name] = col.astype(float)
        elif cs.kind == "int":
            out[name] = col.astype("Int64")
        elif cs.kind == "bool":
            out[name] = col.astype("boolean")
        elif cs.kind == "date":
            out[name] = pd.to_datetime(col).astype("datetime64[ns]")
        elif cs.kind == "category":
            values = col.astype(object).where(col.notna(), None)
            out[name] = pd.Categorical(values, categories=list(cs.categories or ()))
        else:
            out[name] = col.astype("string")
    return pd.DataFrame(out, index=df.index)


def assignment_arrays(latent: pd.DataFrame, assignment) -> tuple[np.ndarray, np.ndarray]:
    """Normalise an assignment to (adjuvant arms, neoadjuvant flags)."""
    n = len(latent)
    pid = latent["patient_id"].astype(str).to_numpy()
    neo: Any = np.zeros(n, bool)
    if isinstance(assignment, str):
        adj: Any = np.full(n, assignment, dtype=object)
    elif isinstance(assignment, pd.DataFrame):
        frame = assignment
        if "patient_id" in frame.columns:
            frame = frame.set_index(frame["patient_id"].astype(str)).reindex(pid)
        if "adjuvant" not in frame.columns:
            raise ConfigError(
                "the assignment table has no 'adjuvant' column",
                hint="give columns 'adjuvant' (and optionally 'neoadjuvant', 'patient_id')",
            )
        adj = frame["adjuvant"].to_numpy(object)
        if "neoadjuvant" in frame.columns:
            raw = frame["neoadjuvant"]
            neo = (raw == NEOADJUVANT_REGIMEN) | (raw.astype(str).str.lower() == "true")
            neo = neo.to_numpy(bool)
    elif isinstance(assignment, pd.Series) and assignment.index.dtype == object:
        adj = assignment.reindex(pid).to_numpy(object)
    elif isinstance(assignment, Sequence | np.ndarray | pd.Series):
        adj = np.asarray(assignment, dtype=object)
    else:
        raise ConfigError(
            f"cannot use an assignment of type {type(assignment).__name__}",
            hint="give an arm name, one arm per patient, or a DataFrame with 'adjuvant'",
        )
    if len(adj) != n:
        raise ConfigError(
            f"the assignment has {len(adj)} entries for {n} patients",
            hint="give exactly one arm per patient, in the cohort's order or keyed by patient_id",
        )
    bad = sorted({str(a) for a in adj if a not in ARMS})
    if bad:
        raise ConfigError(
            f"unknown adjuvant arm(s) in the assignment: {', '.join(bad)}",
            hint=f"use {', '.join(ARMS)} (missing patients in a keyed table also show as 'nan')",
        )
    return np.asarray(adj, dtype=object), np.asarray(neo, bool)
