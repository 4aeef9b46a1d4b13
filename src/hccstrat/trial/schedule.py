"""Treatment and follow-up calendars, missed visits and lost-to-follow-up status.

- :func:`treatment_calendar`: neoadjuvant cycles (HAIC day 1 of each cycle, PD-1 day
  1, lenvatinib daily until a stop date before surgery) and the surgery window.
- :func:`followup_calendar`: visits every ``every_months`` after surgery for
  ``duration_months`` (default every 3 months for 2 years: AFP + imaging) with a
  +/- ``window_days`` tolerance.
- :func:`visit_status`: done / missed / due / upcoming for every planned visit.
- :func:`followup_status`: per patient ``active`` / ``completed`` / ``event`` /
  ``lost_to_followup`` (``ltfu_missed`` consecutive missed visits and no contact since).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hccstrat.exceptions import ConfigError, DataValidationError, Problem, ValidationReport
from hccstrat.schema import DAYS_PER_MONTH
from hccstrat.trial.therapy import NeoadjuvantProtocol

__all__ = [
    "followup_calendar",
    "followup_status",
    "surgery_window",
    "treatment_calendar",
    "visit_status",
]


def treatment_calendar(start_date, protocol: NeoadjuvantProtocol | None = None,
                       planned_surgery=None) -> pd.DataFrame:
    """Dates of the neoadjuvant phase for one patient.

    Returns
    -------
    DataFrame
        ``event, cycle, date`` (HAIC, PD-1, lenvatinib start/stop, surgery window).
    """
    p = protocol or NeoadjuvantProtocol()
    start = pd.Timestamp(start_date)
    rows = []
    for k in range(p.n_cycles):
        day = start + pd.Timedelta(days=k * p.cycle_days)
        rows += [{"event": "HAIC mFOLFOX6", "cycle": k + 1, "date": day},
                 {"event": f"{p.pd1_agent} {p.pd1_dose_mg:g} mg", "cycle": k + 1, "date": day}]
    lo, hi = surgery_window(start + pd.Timedelta(days=(p.n_cycles - 1) * p.cycle_days), p)
    surgery = pd.Timestamp(planned_surgery) if planned_surgery is not None else lo
    rows += [{"event": "lenvatinib start", "cycle": 1, "date": start},
             {"event": "lenvatinib stop", "cycle": p.n_cycles,
              "date": surgery - pd.Timedelta(days=p.lenvatinib_stop_days_before_surgery)},
             {"event": "surgery window opens", "cycle": np.nan, "date": lo},
             {"event": "surgery window closes", "cycle": np.nan, "date": hi}]
    return pd.DataFrame(rows).sort_values(["date", "event"], ignore_index=True)


def surgery_window(last_cycle_date, protocol: NeoadjuvantProtocol | None = None
                   ) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Earliest and latest resection dates after the last cycle's day 1."""
    p = protocol or NeoadjuvantProtocol()
    d = pd.Timestamp(last_cycle_date)
    return (d + pd.Timedelta(days=p.surgery_min_days_after_last_cycle),
            d + pd.Timedelta(days=p.surgery_max_days_after_last_cycle))


def _require(df: pd.DataFrame, cols: tuple[str, ...], source: str) -> None:
    """Refuse a table lacking one of ``cols``."""
    rep = ValidationReport(source=source)
    rep.extend([Problem(None, None, c, "(missing column)", "this column")
                for c in cols if c not in df.columns])
    if rep:
        raise DataValidationError(rep)


def _dates(df: pd.DataFrame, col: str, source: str) -> pd.Series:
    """``df[col]`` as dates; unparseable values are listed with row and patient."""
    raw = df[col]
    out = pd.to_datetime(raw, errors="coerce", format="ISO8601")
    bad = out.isna() & raw.notna() & (raw.astype("string").str.strip() != "")
    if bad.any():
        rep = ValidationReport(source=source)
        rep.extend([Problem(int(df.index.get_loc(i)) + 1, str(df.at[i, "patient_id"]), col,
                            raw[i], "a date YYYY-MM-DD") for i in df.index[bad.to_numpy(bool)]])
        raise DataValidationError(rep)
    return out


def followup_calendar(patients: pd.DataFrame, *, anchor_col: str = "surgery_date",
                      every_months: float = 3.0, duration_months: float = 24.0,
                      window_days: int = 14,
                      assessments: tuple[str, ...] = ("AFP", "imaging")) -> pd.DataFrame:
    """Planned follow-up visits for every patient.

    Returns
    -------
    DataFrame
        ``patient_id, visit, month, target_date, window_start, window_end, assessments``.
    """
    if every_months <= 0 or duration_months < every_months:
        raise ConfigError("every_months must be > 0 and <= duration_months")
    months = np.arange(every_months, duration_months + 1e-9, every_months)
    _require(patients, ("patient_id", anchor_col), "patients table")
    pts = patients[["patient_id", anchor_col]].dropna()  # not operated yet: no calendar
    anchor = _dates(pts, anchor_col, "patients table").to_numpy()
    n, m = len(pts), len(months)
    offs = np.round(months * DAYS_PER_MONTH).astype("timedelta64[D]")
    target = (anchor[:, None] + offs[None, :]).reshape(-1)
    tw = np.timedelta64(window_days, "D")
    return pd.DataFrame({
        "patient_id": np.repeat(pts["patient_id"].astype(str).to_numpy(), m),
        "visit": np.tile(np.arange(1, m + 1), n),
        "month": np.tile(months, n),
        "target_date": target, "window_start": target - tw, "window_end": target + tw,
        "assessments": "+".join(assessments),
    })


def visit_status(calendar: pd.DataFrame, visits: pd.DataFrame, *, as_of) -> pd.DataFrame:
    """Match performed visits to the plan.

    Parameters
    ----------
    calendar : DataFrame
        From :func:`followup_calendar`.
    visits : DataFrame
        Performed visits: ``patient_id, visit_date``.
    as_of : date
        Data cut-off.

    Returns
    -------
    DataFrame
        Calendar plus ``visit_date`` (first performed visit within the window) and
        ``status``: ``done`` / ``missed`` (window closed, no visit) / ``due`` (window
        open) / ``upcoming``.
    """
    as_of = pd.Timestamp(as_of)
    cal = calendar.copy()
    _require(visits, ("patient_id", "visit_date"), "visits table")
    v = visits[["patient_id", "visit_date"]].copy()
    v["patient_id"] = v["patient_id"].astype(str)
    v["visit_date"] = _dates(v, "visit_date", "visits table")
    unknown = ~v["patient_id"].isin(cal["patient_id"].astype(str))
    if unknown.any():  # never ignore a performed visit silently
        rep = ValidationReport(source="visits table")
        rep.extend([Problem(int(v.index.get_loc(i)) + 1, pid, "patient_id", pid,
                            "a patient of the follow-up calendar (known, with a surgery date)")
                    for i, pid in v["patient_id"][unknown].items()])
        raise DataValidationError(rep, hint="correct the patient ids or add the patients "
                                  "(with their surgery date); nothing was written")
    v = v[v["visit_date"] <= as_of]  # nothing after the data cut-off counts
    m = cal.reset_index().merge(v, on="patient_id", how="left")
    inwin = (m["visit_date"] >= m["window_start"]) & (m["visit_date"] <= m["window_end"])
    first = m[inwin].groupby("index")["visit_date"].min()
    cal["visit_date"] = cal.index.map(first)
    cal["status"] = np.select(
        [cal["visit_date"].notna(), cal["window_end"] < as_of, cal["window_start"] <= as_of],
        ["done", "missed", "due"], "upcoming")
    return cal


def followup_status(status: pd.DataFrame, *, events: pd.DataFrame | None = None,
                    ltfu_missed: int = 2, contacts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-patient follow-up status.

    Parameters
    ----------
    status : DataFrame
        From :func:`visit_status` (computed at the data cut-off).
    events : DataFrame, optional
        ``patient_id`` and ``event_date`` (recurrence or death ends scheduled follow-up).
    ltfu_missed : int
        Consecutive missed visits (at the end of the record) that make a patient lost.
    contacts : DataFrame, optional
        Other contacts (``patient_id, contact_date``), e.g. phone calls; a contact after
        the missed visits keeps the patient active.

    Returns
    -------
    DataFrame
        ``patient_id, n_planned, n_done, n_missed, last_contact, status,
        lost_to_followup_date``.
    """
    rows = []
    ev = {} if events is None else dict(zip(events["patient_id"].astype(str),
                                            pd.to_datetime(events["event_date"]), strict=True))
    extra: dict[str, pd.Timestamp] = {}
    if contacts is not None:
        c = contacts.assign(patient_id=contacts["patient_id"].astype(str))
        extra = c.groupby("patient_id")["contact_date"].max().map(pd.Timestamp).to_dict()
    for pid, g in status.groupby("patient_id", sort=False):
        g = g.sort_values("visit")
        ev_date = ev.get(pid, pd.NaT)
        if pd.notna(ev_date):
            g = g[g["target_date"] <= ev_date]
        closed = g[g["status"].isin(["done", "missed"])]
        tail = 0
        for s in closed["status"].to_numpy()[::-1]:
            if s != "missed":
                break
            tail += 1
        last = g["visit_date"].max()
        if pid in extra and (pd.isna(last) or extra[pid] > last):
            last = extra[pid]
        recent_contact = pd.notna(last) and len(closed) and tail and \
            last > closed[closed["status"] == "missed"]["window_end"].iloc[-tail]
        if pd.notna(ev_date):
            st, lost = "event", pd.NaT
        elif tail >= ltfu_missed and not recent_contact:
            st = "lost_to_followup"
            lost = last if pd.notna(last) else closed["window_start"].iloc[-tail]
        elif len(g) and (g["status"] != "upcoming").all() and not (g["status"] == "due").any():
            st, lost = "completed", pd.NaT
        else:
            st, lost = "active", pd.NaT
        rows.append({"patient_id": pid, "n_planned": len(g),
                     "n_done": int((g["status"] == "done").sum()),
                     "n_missed": int((g["status"] == "missed").sum()),
                     "last_contact": last, "status": st, "lost_to_followup_date": lost})
    return pd.DataFrame(rows)
