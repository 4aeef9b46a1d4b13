"""Survival targets: endpoints from the canonical table, as sksurv structured arrays.

All times are in months from surgery (:data:`hccstrat.schema.DAYS_PER_MONTH` days each).
Every function that needs a target takes one structured array with fields
``event`` (bool) and ``time`` (float), built by :func:`make_surv`.

Endpoints (DESIGN §4):

- **RFS**: recurrence or death, whichever first; censored at last follow-up.
- **OS**: death; censored at last follow-up.
- **Aggressive recurrence** (PRE/POST target): recurrence within 24 months that is
  multinodular (>= 4 nodules) or infiltrative, or with macrovascular invasion, or
  extrahepatic. Non-aggressive recurrences and deaths without recurrence are
  censored at their date (cause-specific definition).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from hccstrat.exceptions import DataValidationError, Problem, ValidationReport
from hccstrat.schema import DAYS_PER_MONTH

__all__ = [
    "AGGRESSIVE_HORIZON_MONTHS",
    "SURV_DTYPE",
    "Endpoint",
    "endpoint",
    "event_by",
    "is_aggressive",
    "make_surv",
    "months_between",
    "surv_to_frame",
]

SURV_DTYPE = np.dtype([("event", "?"), ("time", "<f8")])

#: Horizon of the aggressive-recurrence definition and of the primary endpoint.
AGGRESSIVE_HORIZON_MONTHS = 24.0

Endpoint = Literal["rfs", "os", "aggressive", "recurrence"]


def make_surv(event, time) -> np.ndarray:
    """Build a structured survival array (fields ``event``, ``time``).

    Parameters
    ----------
    event : array-like of bool
        True where the event was observed.
    time : array-like of float
        Time to event or censoring, >= 0.

    Raises
    ------
    ValueError
        On length mismatch, missing or negative times.
    """
    event = np.asarray(event, dtype=bool)
    time = np.asarray(time, dtype=float)
    if event.shape != time.shape or event.ndim != 1:
        raise ValueError(
            f"event and time must be 1-D of equal length, got {event.shape} and {time.shape}"
        )
    if np.isnan(time).any():
        raise ValueError(f"{int(np.isnan(time).sum())} missing survival time(s)")
    if (time < 0).any():
        raise ValueError(f"{int((time < 0).sum())} negative survival time(s)")
    y = np.empty(event.shape[0], dtype=SURV_DTYPE)
    y["event"] = event
    y["time"] = time
    return y


def surv_to_frame(y: np.ndarray) -> pd.DataFrame:
    """Structured survival array as a two-column DataFrame (``time``, ``event``)."""
    return pd.DataFrame({"time": y["time"], "event": y["event"]})


def months_between(start: pd.Series, end: pd.Series) -> pd.Series:
    """Months from ``start`` to ``end`` (datetime Series)."""
    return (pd.to_datetime(end) - pd.to_datetime(start)).dt.days / DAYS_PER_MONTH


def is_aggressive(df: pd.DataFrame) -> pd.Series:
    """Whether each patient's recurrence is *aggressive* (any time; see module doc).

    Uses ``recurrence_pattern``, ``recurrence_nodules`` and ``recurrence_site``;
    a patient without recurrence is False.
    """
    rec = df["recurrence"].fillna(False).astype(bool)
    pattern = df.get("recurrence_pattern", pd.Series(pd.NA, index=df.index)).astype("string")
    site = df.get("recurrence_site", pd.Series(pd.NA, index=df.index)).astype("string")
    nodules = pd.to_numeric(df.get("recurrence_nodules", pd.Series(np.nan, index=df.index)))
    aggressive = (
        pattern.isin(["multinodular", "infiltrative", "macrovascular"]).fillna(False)
        | (nodules >= 4).fillna(False)
        | site.isin(["extrahepatic", "both"]).fillna(False)
    )
    return (rec & aggressive.astype(bool)).astype(bool)


def _required(df: pd.DataFrame, cols: list[str], what: str) -> None:
    report = ValidationReport(source=what)
    for c in cols:
        if c not in df.columns:
            report.add(Problem(None, None, c, "(missing column)", f"this column to derive {what}"))
    if report:
        raise DataValidationError(report)


def endpoint(
    df: pd.DataFrame, which: Endpoint = "rfs", *, horizon: float | None = None
) -> np.ndarray:
    """Derive a survival target from the canonical table.

    Parameters
    ----------
    df : DataFrame
        Canonical table with ``surgery_date``, ``last_followup_date`` and the
        outcome columns.
    which : {"rfs", "os", "aggressive", "recurrence"}
        Endpoint. ``"recurrence"`` counts any recurrence (death censored).
    horizon : float, optional
        Administrative censoring at this many months (e.g. 24 for the 2-year
        endpoint). For ``"aggressive"`` the default is 24 months (its definition).

    Returns
    -------
    ndarray
        Structured array with ``event`` and ``time`` (months).

    Raises
    ------
    DataValidationError
        When a column is missing, or a recorded recurrence or death has no date
        (it would otherwise be counted as event-free follow-up).
    """
    _required(
        df, ["surgery_date", "last_followup_date", "recurrence", "death"], f"the {which} endpoint"
    )
    start = df["surgery_date"]
    fu = months_between(start, df["last_followup_date"]).to_numpy(float)
    rec = df["recurrence"].fillna(False).to_numpy(bool)
    death = df["death"].fillna(False).to_numpy(bool)
    t_rec = (
        months_between(start, df["recurrence_date"]).to_numpy(float)
        if "recurrence_date" in df
        else np.full(len(df), np.nan)
    )
    t_death = (
        months_between(start, df["death_date"]).to_numpy(float)
        if "death_date" in df
        else np.full(len(df), np.nan)
    )
    report = ValidationReport(source=f"the {which} endpoint")
    ids = df["patient_id"].astype(str).to_numpy() if "patient_id" in df else None
    for flag, t_ev, col in ((rec, t_rec, "recurrence_date"), (death, t_death, "death_date")):
        for i in np.flatnonzero(flag & np.isnan(t_ev)):
            pid = None if ids is None else ids[i]
            report.add(Problem(int(i) + 1, pid, col, "(missing)", "a date: the event is recorded"))
    if report:
        raise DataValidationError(report, hint="give the date of every recorded event")
    t_rec = np.where(rec, t_rec, np.inf)
    t_death = np.where(death, t_death, np.inf)
    never = np.full(len(df), np.inf)
    if which == "rfs":
        t_event, censor = np.minimum(t_rec, t_death), fu
    elif which == "os":
        t_event, censor = t_death, fu
    elif which == "recurrence":
        # death without recurrence is a competing event: censored at its date
        t_event, censor = t_rec, np.minimum(fu, t_death)
    elif which == "aggressive":
        agg = is_aggressive(df).to_numpy(bool)
        horizon = AGGRESSIVE_HORIZON_MONTHS if horizon is None else horizon
        t_event = np.where(agg, t_rec, never)
        # a non-aggressive recurrence or a death ends follow-up for this endpoint
        censor = np.minimum(np.minimum(fu, t_death), np.where(agg, never, t_rec))
    else:
        raise ValueError(
            f"unknown endpoint {which!r}; expected 'rfs', 'os', 'aggressive' or 'recurrence'"
        )
    event = np.isfinite(t_event)
    time = np.where(event, t_event, censor)
    if horizon is not None:
        late = time > horizon
        event = event & ~late
        time = np.minimum(time, horizon)
    return make_surv(event, np.maximum(time, 0.0))


def event_by(y: np.ndarray, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """Binary status at ``horizon``: (event by horizon, status known).

    A patient censored before the horizon has unknown status.
    """
    event = y["event"] & (y["time"] <= horizon)
    known = event | (y["time"] >= horizon)
    return event, known
