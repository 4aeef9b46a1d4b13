"""Shared machinery of the evaluation layer: input checks, the prediction protocol and
a vectorised weighted Kaplan–Meier estimator.

Every metric accepts optional ``weights`` of shape ``(n,)`` or ``(B, n)``; a 2-D array
holds one row of case weights per bootstrap resample (multinomial counts), so one call
evaluates all resamples at once.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from hccstrat.exceptions import (
    ConfigError,
    DataValidationError,
    ModelError,
    Problem,
    ValidationReport,
)

__all__ = [
    "as_weights",
    "censoring_at",
    "check_surv",
    "km_at",
    "km_curve",
    "risk_at",
    "risk_score",
    "squeeze",
    "step_eval",
    "survival_at",
]


def check_surv(y: Any, n: int | None = None, *, where: str = "y") -> np.ndarray:
    """Check a survival target (sksurv structured array with ``event`` and ``time``).

    Raises
    ------
    DataValidationError
        When fields are missing, lengths differ or times are invalid.
    """
    report = ValidationReport(source=where)
    names = getattr(getattr(y, "dtype", None), "names", None) or ()
    if "event" not in names or "time" not in names:
        report.add(
            Problem(
                None,
                None,
                where,
                type(y).__name__,
                "a structured array with fields 'event' and 'time' "
                "(build it with hccstrat.survival.make_surv)",
            )
        )
        raise DataValidationError(report)
    t = np.asarray(y["time"], dtype=float)
    if n is not None and t.shape[0] != n:
        report.add(
            Problem(None, None, where, f"{t.shape[0]} rows", f"{n} rows (one per prediction)")
        )
    if np.isnan(t).any() or (t < 0).any():
        report.add(
            Problem(None, None, f"{where}.time", "missing or negative", "times >= 0 in months")
        )
    if report:
        raise DataValidationError(report)
    return y


def check_pred(pred: Any, n: int, *, where: str = "prediction") -> np.ndarray:
    """1-D finite float array of length ``n``."""
    p = np.asarray(pred, dtype=float)
    if p.ndim != 1 or p.shape[0] != n or not np.isfinite(p).all():
        raise DataValidationError(
            ValidationReport(
                [
                    Problem(
                        None,
                        None,
                        where,
                        f"shape {p.shape}",
                        f"{n} finite numbers, one per patient",
                    )
                ],
                source=where,
            )
        )
    return p


def as_weights(weights: Any, n: int) -> tuple[np.ndarray, bool]:
    """Weights as a ``(B, n)`` float array and whether the input was 2-D."""
    if weights is None:
        return np.ones((1, n)), False
    w = np.asarray(weights, dtype=float)
    two_d = w.ndim == 2
    w = np.atleast_2d(w)
    if w.shape[1] != n or (w < 0).any():
        raise ConfigError(
            f"weights of shape {np.shape(weights)} do not fit {n} patients",
            hint="pass non-negative weights of shape (n,) or (resamples, n)",
        )
    return w, two_d


def squeeze(value: np.ndarray, two_d: bool):
    """Return a float for 1-D use and the array for 2-D (resampled) use."""
    return value if two_d else float(np.asarray(value).reshape(-1)[0])


def km_curve(time: np.ndarray, event: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted Kaplan–Meier estimate for every row of ``w``.

    Returns
    -------
    uniq : ndarray (U,)
        Distinct times.
    surv : ndarray (B, U)
        S(t) just after each distinct time (right-continuous).
    """
    order = np.argsort(time, kind="stable")
    t = time[order]
    uniq, start = np.unique(t, return_index=True)
    ws = w[:, order]
    d = np.add.reduceat(ws * event[order], start, axis=1)
    c = np.add.reduceat(ws, start, axis=1)
    at_risk = np.cumsum(c[:, ::-1], axis=1)[:, ::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(at_risk > 0, d / np.where(at_risk > 0, at_risk, 1.0), 0.0)
    return uniq, np.cumprod(1.0 - h, axis=1)


def step_eval(uniq: np.ndarray, surv: np.ndarray, q, *, left: bool = False) -> np.ndarray:
    """Evaluate right-continuous step functions ``surv`` (B, U) at times ``q``.

    ``left=True`` gives the left limit S(q-).
    """
    q = np.atleast_1d(np.asarray(q, dtype=float))
    idx = np.searchsorted(uniq, q, side="left" if left else "right") - 1
    padded = np.concatenate([np.ones((surv.shape[0], 1)), surv], axis=1)
    return padded[:, idx + 1]


def km_at(y: np.ndarray, t, w: np.ndarray) -> np.ndarray:
    """Kaplan–Meier survival at times ``t`` for each weight row, shape (B, len(t))."""
    uniq, s = km_curve(np.asarray(y["time"], float), np.asarray(y["event"], bool), w)
    return step_eval(uniq, s, t)


def censoring_at(y: np.ndarray, t, w: np.ndarray, *, left: bool = True) -> np.ndarray:
    """Censoring survival G (reverse Kaplan–Meier) at times ``t``; left limits by default."""
    uniq, g = km_curve(np.asarray(y["time"], float), ~np.asarray(y["event"], bool), w)
    return step_eval(uniq, g, t, left=left)


def _evaluate_step_functions(fns, times: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(fn(times), dtype=float) for fn in fns])


def survival_at(model: Any, X: Any, times) -> np.ndarray:
    """Predicted survival S(t | x) at ``times`` for any estimator, shape (n, len(times)).

    Accepts models whose ``predict_survival_function`` returns sksurv-style step
    functions (callables), a lifelines-style DataFrame (rows = times, columns =
    patients), or an array; a ``times=`` keyword is passed when the method takes one.
    Models with only ``predict_risk`` are refused (a risk score is no probability).
    """
    times = np.atleast_1d(np.asarray(times, dtype=float))
    fn: Callable | None = getattr(model, "predict_survival_function", None)
    if fn is None:
        raise ModelError(
            f"{type(model).__name__} has no predict_survival_function",
            hint="use a model that predicts survival probabilities, or pass "
            "predicted risks at the horizon directly",
        )
    try:
        takes_times = "times" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_times = False
    out = fn(X, times=times) if takes_times else fn(X)
    if hasattr(out, "index") and hasattr(out, "columns"):  # lifelines: index = times
        idx = np.asarray(out.index, dtype=float)
        vals = np.asarray(out, dtype=float)  # (T, n)
        pos = np.searchsorted(idx, times, side="right") - 1
        res = np.where(pos[:, None] >= 0, vals[np.clip(pos, 0, None)], 1.0)
        return res.T
    arr = np.asarray(out)
    if arr.dtype == object or (arr.ndim == 1 and len(arr) and callable(arr[0])):
        return _evaluate_step_functions(arr, times)
    arr = np.asarray(arr, dtype=float)
    if arr.ndim == 1 and len(times) == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != len(times):
        raise ModelError(
            f"predict_survival_function returned shape {arr.shape}; expected "
            f"(n_patients, {len(times)})",
            hint="return step functions or S(t) at the requested times",
        )
    return arr


def risk_at(model: Any, X: Any, horizon: float) -> np.ndarray:
    """Predicted probability of the event by ``horizon`` (1 − S(horizon | x))."""
    return 1.0 - survival_at(model, X, [horizon])[:, 0]


def risk_score(model: Any, X: Any, horizon: float = 24.0) -> np.ndarray:
    """A risk score (higher = worse): ``predict_risk`` when present, else 1 − S(horizon)."""
    if hasattr(model, "predict_risk"):
        return np.asarray(model.predict_risk(X), dtype=float).reshape(-1)
    if hasattr(model, "predict_survival_function"):
        return risk_at(model, X, horizon)
    if hasattr(model, "predict"):
        return np.asarray(model.predict(X), dtype=float).reshape(-1)
    raise ModelError(
        f"{type(model).__name__} has neither predict_risk nor predict_survival_function",
        hint="implement predict_risk(X) (higher = worse)",
    )
