"""Prospective model monitoring over the predictions stored in the registry.

For each model version (name, version, kind), predictions are taken in the order they
were made and split in two halves: the first half is the *reference*, the second the
*current* period. The report gives

- the score distribution shift (:func:`hccstrat.evaluation.drift.psi`) and monthly
  counts / mean score / share above the threshold;
- input drift per model input (:func:`hccstrat.evaluation.drift.input_drift`: KS or
  chi-squared test and PSI) on the inputs stored with each prediction;
- rolling performance (:func:`hccstrat.evaluation.drift.rolling_performance`: C-index,
  O/E, calibration slope by window of the date of surgery) once outcomes (recurrence,
  death, follow-up) are recorded in the patients' latest clinical records.

Statistics need at least :data:`MIN_PER_PERIOD` predictions in each period; below that
the report says how many there are instead of computing unstable numbers.

Scores are read without the stored explanations and inputs (JSON); the inputs are
fetched for at most :data:`MAX_DRIFT_ROWS` predictions per period, evenly spread over
it, so a registry with hundreds of thousands of predictions renders the page in one
light query plus a bounded one.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from hccstrat.storage import repositories as repo
from hccstrat.storage.models import ModelVersion, Patient, Prediction

__all__ = ["MAX_DRIFT_ROWS", "MIN_PER_PERIOD", "monitoring_report"]

log = logging.getLogger(__name__)

#: predictions needed in each period before drift statistics are computed
MIN_PER_PERIOD = 10
#: predictions per period whose stored inputs are read for the input-drift tests
MAX_DRIFT_ROWS = 2000
_MAX_INPUTS = 60
_IN_CHUNK = 500  # ids per IN (...) list


class _Row(NamedTuple):
    """What monitoring needs of a prediction (no JSON columns)."""

    id: int
    patient_id: int
    score: float
    created_at: Any


def _when(v) -> dt.datetime:
    return v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(str(v))


def _spread(rows: list[_Row], k: int) -> list[_Row]:
    """At most ``k`` rows, evenly spaced over ``rows`` (all of them when fewer)."""
    if len(rows) <= k:
        return rows
    import numpy as np

    return [rows[i] for i in np.linspace(0, len(rows) - 1, k).round().astype(int)]


def _inputs(session: Session, rows: list[_Row]) -> list[dict]:
    """The stored inputs of ``rows``, in their order (``{}`` where none were stored)."""
    ids = [r.id for r in rows]
    got: dict[int, dict] = {}
    for i in range(0, len(ids), _IN_CHUNK):
        chunk = ids[i : i + _IN_CHUNK]
        q = select(Prediction.id, Prediction.inputs).where(Prediction.id.in_(chunk))
        got.update({pid: inp or {} for pid, inp in session.execute(q).all()})
    return [got.get(i, {}) for i in ids]


def _inputs_frame(inputs: list[dict]):
    import pandas as pd

    rows = []
    for inp in inputs:
        row = {k: v for k, v in (inp.get("clinical") or {}).items()}
        row.update(inp.get("features") or {})
        rows.append(row)
    df = pd.DataFrame(rows)
    keep = []
    for c in df.columns:
        if c in ("patient_id", "centre") or c.endswith("_date"):
            continue
        s = df[c]
        num = pd.to_numeric(s, errors="coerce")
        if num.notna().sum() >= max(2, 0.5 * s.notna().sum()) and s.notna().any():
            df[c] = num
            keep.append(c)
        elif s.dropna().astype(str).nunique() <= 12:
            df[c] = s.astype("object").where(s.notna(), None).astype("string")
            keep.append(c)
    return df[keep[:_MAX_INPUTS]]


def _performance(session: Session, preds: list[_Row]) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from hccstrat.evaluation.drift import rolling_performance
    from hccstrat.survival import endpoint

    latest: dict[int, _Row] = {}
    for p in preds:
        latest[p.patient_id] = p
    records = repo.latest_clinical_many(session, latest)  # one query, not one per patient
    rows = []
    for pid, p in latest.items():
        rec = records.get(pid)
        if rec is None:
            continue
        d = dict(rec.data)
        if d.get("surgery_date") and d.get("last_followup_date") and "recurrence" in d:
            rows.append({**d, "_score": p.score})
    if len(rows) < 30:
        return {"available": False,
                "message": f"outcomes recorded for {len(rows)} scored patient(s); "
                           "rolling performance needs at least 30"}
    df = pd.DataFrame(rows)
    for c in ("surgery_date", "last_followup_date", "recurrence_date", "death_date"):
        if c in df:
            df[c] = pd.to_datetime(df[c], errors="coerce")
    for c in ("recurrence", "death"):
        if c not in df:
            df[c] = False
        df[c] = df[c].astype("boolean").fillna(False).astype(bool)
    try:
        y = endpoint(df, "aggressive")
    except Exception as err:  # outcome columns present but unusable: say so, do not fail
        return {"available": False, "message": f"outcomes cannot be used: {err}"}
    roll = rolling_performance(y, df["_score"].to_numpy(float), df["surgery_date"],
                               window_months=12, step_months=6, min_n=30)
    roll = roll.replace({np.nan: None})
    return {"available": True, "n": len(df), "events": int(y["event"].sum()),
            "windows": [{"start": r.window_start.strftime("%Y-%m"),
                         "end": r.window_end.strftime("%Y-%m"), "n": int(r.n),
                         "events": int(r.events), "c_index": r.c_index, "oe_ratio": r.oe_ratio,
                         "calibration_slope": r.calibration_slope,
                         "mean_predicted": r.mean_predicted}
                        for r in roll.itertuples(index=False)]}


def _one_model(session: Session, key: tuple, preds: list[_Row]) -> dict[str, Any]:
    import numpy as np

    from hccstrat.evaluation.drift import input_drift, psi

    name, version, kind = key
    preds = sorted(preds, key=lambda p: (_when(p.created_at), p.id))
    scores = np.array([p.score for p in preds], float)
    months: dict[str, list[float]] = {}
    for p in preds:
        months.setdefault(_when(p.created_at).strftime("%Y-%m"), []).append(p.score)
    out: dict[str, Any] = {
        "model": name, "version": version, "kind": kind, "n": len(preds),
        "monthly": [{"month": m, "n": len(v), "mean": float(np.mean(v)),
                     "high": float(np.mean(np.asarray(v) >= 0.5))}
                    for m, v in sorted(months.items())],
        "drift": None, "inputs": [], "performance": None,
    }
    half = len(preds) // 2
    if half < MIN_PER_PERIOD:
        out["message"] = (f"{len(preds)} prediction(s): drift statistics need at least "
                          f"{2 * MIN_PER_PERIOD}")
    else:
        ref, cur = preds[:half], preds[half:]
        out["periods"] = {
            "reference": [_when(ref[0].created_at).date().isoformat(),
                          _when(ref[-1].created_at).date().isoformat()],
            "current": [_when(cur[0].created_at).date().isoformat(),
                        _when(cur[-1].created_at).date().isoformat()]}
        score_psi = psi(scores[:half], scores[half:])
        out["drift"] = {"score_psi": score_psi, "mean_reference": float(scores[:half].mean()),
                        "mean_current": float(scores[half:].mean()),
                        "level": "major" if score_psi > 0.25 else
                        "moderate" if score_psi > 0.1 else "stable"}
        ref_s, cur_s = _spread(ref, MAX_DRIFT_ROWS), _spread(cur, MAX_DRIFT_ROWS)
        frame = _inputs_frame(_inputs(session, ref_s + cur_s))
        if frame.shape[1]:
            tab = input_drift(frame.iloc[: len(ref_s)], frame.iloc[len(ref_s) :])
            tab = tab.sort_values(["drift", "psi"], ascending=[False, False])
            out["inputs"] = [{"column": r.column, "test": r.test, "statistic": r.statistic,
                              "p_value": r.p_value, "psi": r.psi, "drift": bool(r.drift)}
                             for r in tab.itertuples(index=False)]
    out["performance"] = _performance(session, preds)
    return out


def monitoring_report(session: Session, scope: repo.Scope) -> list[dict[str, Any]]:
    """Drift and performance per model version, over the predictions ``scope`` may see.

    Returns
    -------
    list of dict
        One entry per (model, version, kind): ``n``, ``monthly``, ``drift`` (score PSI
        and level, or None), ``inputs`` (per-input tests, drifting first),
        ``performance`` and, when statistics are withheld, ``message``.
    """
    q = (select(Prediction.id, Prediction.patient_id, Prediction.score, Prediction.created_at,
                Prediction.kind, ModelVersion.name, ModelVersion.version)
         .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
         .join(Patient, Patient.id == Prediction.patient_id)
         .where(Patient.deleted_at.is_(None)))
    if scope.centre_id is not None:
        q = q.where(Patient.centre_id == scope.centre_id)
    groups: dict[tuple, list[_Row]] = {}
    for pid, patient, score, created, kind, name, version in session.execute(q).all():
        groups.setdefault((name, version, kind), []).append(_Row(pid, patient, score, created))
    return [_one_model(session, k, v) for k, v in sorted(groups.items())]
