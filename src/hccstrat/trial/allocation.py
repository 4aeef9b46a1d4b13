"""Arm assignment for NCT07282184 by the PRE rule.

PRE >= threshold (default 0.5) and eligible → neoadjuvant HAIC (mFOLFOX6) + lenvatinib +
PD-1 inhibitor, then resection; otherwise upfront resection. Each decision records the
score, the threshold and the model version; it can be appended to an
:class:`~hccstrat.trial.allocation_log.AllocationLog`.

The score comes from any risk model with ``predict_risk`` (values in [0, 1]) or
``predict_proba`` (column 1), from a plain callable ``f(frame) -> scores``, or from a
precomputed ``pre_score`` column. Randomisation for NCT07417800 lives in
:mod:`hccstrat.trial.randomisation`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hccstrat.exceptions import (
    ConfigError,
    DataValidationError,
    ModelError,
    Problem,
    ValidationReport,
)
from hccstrat.trial.allocation_log import AllocationLog, read_log

__all__ = [
    "ARM_NEOADJUVANT",
    "ARM_RESECTION",
    "PRE_ARMS",
    "allocate_pre",
    "check_patient_ids",
    "logged_arms",
    "model_version_of",
    "risk_scores",
]

ARM_NEOADJUVANT = "HAIC+LEN+PD1"
ARM_RESECTION = "resection"
PRE_ARMS = (ARM_NEOADJUVANT, ARM_RESECTION)


def model_version_of(model: Any) -> str:
    """Best description of a model's version: ``model_version``/``version_`` or class name."""
    for attr in ("model_version", "version_", "version"):
        v = getattr(model, attr, None)
        if isinstance(v, str) and v:
            return v
    if hasattr(model, "predict_risk") or hasattr(model, "predict_proba"):
        return type(model).__name__
    return getattr(model, "__name__", type(model).__name__)


def risk_scores(model: Any, X: pd.DataFrame) -> np.ndarray:
    """Scores in [0, 1] from a model (``predict_risk``/``predict_proba``) or a callable.

    Raises
    ------
    ModelError
        When the model offers no usable method or returns values outside [0, 1].
    """
    if hasattr(model, "predict_risk"):
        s = np.asarray(model.predict_risk(X), dtype=float)
    elif hasattr(model, "predict_proba"):
        p = np.asarray(model.predict_proba(X), dtype=float)
        s = p[:, 1] if p.ndim == 2 else p
    elif callable(model):
        s = np.asarray(model(X), dtype=float)
    else:
        raise ModelError(f"{type(model).__name__} has neither predict_risk nor predict_proba",
                         hint="pass a fitted PRE model, a callable or a 'pre_score' column")
    s = s.reshape(-1)
    if s.shape[0] != len(X):
        raise ModelError(f"the model returned {s.shape[0]} scores for {len(X)} patients")
    finite = s[np.isfinite(s)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ModelError(f"risk scores must lie in [0, 1]; got range [{finite.min():.3g}, "
                         f"{finite.max():.3g}]", hint="use a calibrated probability output")
    return s


def check_patient_ids(frame: pd.DataFrame, required: tuple[str, ...] = (),
                      *, source: str = "allocation input") -> None:
    """Refuse, before anything is logged, a table a batch allocation would trip on.

    Raises
    ------
    DataValidationError
        Listing a missing ``patient_id`` (or ``required``) column, rows without a
        patient id or a required value, and patient ids that occur more than once
        (a patient is allocated once).
    """
    rep = ValidationReport(source=source)
    for col in ("patient_id", *required):
        if col not in frame.columns:
            rep.add(Problem(None, None, col, "(missing column)", f"a {col} column"))
    if rep:
        raise DataValidationError(rep)
    ids = frame["patient_id"].astype("string").str.strip()
    dup = ids.duplicated(keep=False) & ids.notna()
    for pos, (i, pid) in enumerate(ids.items(), 1):
        label = None if pd.isna(pid) else str(pid)
        for col in ("patient_id", *required):
            val = frame.at[i, col]
            if pd.isna(val) or str(val).strip() == "":
                rep.add(Problem(pos, label, col, None, "a value"))
        if dup.at[i]:
            rep.add(Problem(pos, label, "patient_id", pid, "a patient id that occurs once "
                            "(a patient is allocated once)"))
    if rep:
        raise DataValidationError(rep, hint="correct the listed rows; nothing was allocated")


def logged_arms(log: AllocationLog) -> dict[str, str]:
    """Arm of every patient already allocated in ``log``."""
    return {str(e.get("patient_id")): e.get("arm") for e in read_log(log.path)
            if e.get("type") == "allocation"}


def allocate_pre(
    frame: pd.DataFrame,
    *,
    risk: Any | None = None,
    score_col: str = "pre_score",
    threshold: float = 0.5,
    model_version: str | None = None,
    eligible: pd.Series | np.ndarray | None = None,
    log: AllocationLog | None = None,
    time_col: str | None = "screening_date",
) -> pd.DataFrame:
    """Assign arms by the PRE rule.

    Parameters
    ----------
    frame : DataFrame
        Patients (``patient_id`` plus model inputs or ``score_col``).
    risk : model or callable, optional
        Stand-in or real PRE model; when omitted ``frame[score_col]`` is used.
    score_col : str
        Column of precomputed scores.
    threshold : float
        PRE >= threshold → neoadjuvant arm.
    model_version : str, optional
        Recorded with every decision; required with a precomputed score unless the
        frame has a ``model_version`` column.
    eligible : bool array, optional
        Eligibility for the neoadjuvant arm; ineligible or missing-score patients get
        no arm (``arm`` is missing, ``decision`` says why).
    log : AllocationLog, optional
        Each assignment is appended; a patient already in the log is not allocated
        again (its row shows the logged arm and says so in ``decision``).
    time_col : str, optional
        Date recorded as ``allocated_on`` when present.

    Returns
    -------
    DataFrame
        ``patient_id, pre_score, threshold, model_version, arm, decision``.
    """
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold {threshold} must lie in (0, 1)")
    check_patient_ids(frame)
    if risk is not None:
        score = risk_scores(risk, frame)
        version = model_version or model_version_of(risk)
        versions = pd.Series(version, index=frame.index)
    else:
        if score_col not in frame.columns:
            raise ConfigError(f"no risk model given and no {score_col!r} column",
                              hint="pass risk=<model> or add the precomputed scores")
        score = pd.to_numeric(frame[score_col], errors="coerce").to_numpy(float)
        if model_version is not None:
            versions = pd.Series(model_version, index=frame.index)
        elif "model_version" in frame.columns:
            versions = frame["model_version"].astype("string")
        else:
            raise ConfigError("a precomputed score needs its model version",
                              hint="pass model_version=... or add a 'model_version' column")
        risk_scores(lambda _x: score, frame)  # range check
    elig = np.ones(len(frame), bool) if eligible is None else \
        pd.Series(eligible).fillna(False).to_numpy(bool)
    has = np.isfinite(score)
    high = has & (score >= threshold)
    arm = np.where(~elig | ~has, None, np.where(high, ARM_NEOADJUVANT, ARM_RESECTION))
    decision = np.select(
        [~elig, ~has, high],
        ["not allocated: not eligible", "not allocated: PRE score missing",
         f"PRE >= {threshold:g}: neoadjuvant then resection"],
        f"PRE < {threshold:g}: upfront resection")
    out = pd.DataFrame({"patient_id": frame["patient_id"].astype(str).to_numpy(),
                        "pre_score": score, "threshold": float(threshold),
                        "model_version": versions.to_numpy(), "arm": arm,
                        "decision": decision})
    if time_col and time_col in frame.columns:
        out["allocated_on"] = pd.to_datetime(frame[time_col]).to_numpy()
    if log is not None:
        # a patient is allocated once: one already in the log keeps its logged arm
        done = out["patient_id"].map(log.has_patient).to_numpy(bool)
        out.loc[done, "decision"] = f"not allocated again: already allocated in {log.path}"
        out.loc[done, "arm"] = out.loc[done, "patient_id"].map(logged_arms(log))
        for r in out[out["arm"].notna() & ~done].itertuples(index=False):
            log.append({"patient_id": r.patient_id, "arm": r.arm, "method": "PRE_rule",
                        "pre_score": round(float(r.pre_score), 6), "threshold": r.threshold,
                        "model_version": str(r.model_version)})
    return out

