"""Overall accuracy: time-dependent Brier score and integrated Brier score with IPCW
(Graf et al., Stat Med 1999), as in ``sksurv.metrics.brier_score``.

Censoring is handled by inverse probability of censoring weights from the
Kaplan–Meier estimate G of the censoring distribution: events before ``t`` weigh
1/G(T−), patients still event-free at ``t`` weigh 1/G(t).

Ties between an event time and a censoring time: G is the plain reverse
Kaplan–Meier (lifelines' ``KaplanMeierFitter`` on ``~event``: patients with an event
at s stay in the censoring risk set at s) and events use the left limit G(T−).
scikit-survival instead removes the events from that risk set and uses G(T), so the
two agree exactly only when no event time equals a censoring time.
"""

from __future__ import annotations

import numpy as np

from hccstrat.evaluation._core import as_weights, censoring_at, check_surv, km_at
from hccstrat.exceptions import DataValidationError, Problem, ValidationReport

__all__ = ["brier_score", "integrated_brier_score", "scaled_brier"]


def _surv_matrix(surv, n: int, k: int) -> np.ndarray:
    s = np.asarray(surv, dtype=float)
    if s.ndim == 1 and k == 1:
        s = s[:, None]
    if s.shape != (n, k) or not np.isfinite(s).all():
        raise DataValidationError(
            ValidationReport(
                [
                    Problem(
                        None,
                        None,
                        "survival",
                        f"shape {s.shape}",
                        f"predicted survival of shape ({n}, {k}) (patients x times)",
                    )
                ],
                source="brier",
            )
        )
    return s


def brier_score(y: np.ndarray, surv, times, *, weights=None, y_train=None) -> np.ndarray:
    """IPCW Brier score at each of ``times``.

    Parameters
    ----------
    y : structured array
        Survival target (months).
    surv : array-like (n, len(times))
        Predicted survival probabilities S(t | x).
    times : float or sequence
    weights : (n,) or (B, n), optional
    y_train : structured array, optional
        Data for the censoring distribution (default ``y``).

    Returns
    -------
    ndarray (len(times),) or (B, len(times))
        NaN for a resample (weight row) whose censoring survival G(t) is 0.

    Raises
    ------
    DataValidationError
        For 1-D use, when G(t) = 0 at a time: every patient still followed was censored
        by ``t`` (t at or beyond the last censored follow-up), so no IPCW estimate exists.
    """
    y = check_surv(y)
    n = y.shape[0]
    times = np.atleast_1d(np.asarray(times, dtype=float))
    s = _surv_matrix(surv, n, times.size)
    w, two_d = as_weights(weights, n)
    time = np.asarray(y["time"], float)
    event = np.asarray(y["event"], bool)
    ref, wref = (
        (y, w)
        if y_train is None
        else (check_surv(y_train, where="y_train"), np.ones((1, y_train.shape[0])))
    )
    g_t = censoring_at(ref, time, wref)  # (B or 1, n), left limits
    g_h = censoring_at(ref, times, wref, left=False)  # (B or 1, k)
    beyond = np.broadcast_to(g_h <= 0, (w.shape[0], times.size))
    if not two_d and beyond.any():
        raise DataValidationError(
            ValidationReport(
                [
                    Problem(
                        None,
                        None,
                        "times",
                        times[beyond[0]].tolist(),
                        "times before the last censored follow-up (censoring survival > 0)",
                    )
                ],
                source="brier",
            ),
            hint="choose horizons within the follow-up of the data",
        )
    out = np.empty((w.shape[0], times.size))
    for k, t in enumerate(times):
        case = event & (time <= t)
        ctrl = time > t
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(case, s[:, k] ** 2 / np.where(g_t > 0, g_t, np.inf), 0.0)
            b = np.where(ctrl, (1 - s[:, k]) ** 2, 0.0) / np.where(
                g_h[:, [k]] > 0, g_h[:, [k]], np.inf
            )
        out[:, k] = ((a + b) * w).sum(axis=1) / w.sum(axis=1)
    out[beyond] = np.nan
    return out if two_d else out[0]


def integrated_brier_score(y: np.ndarray, surv, times, *, weights=None, y_train=None):
    """Integrated Brier score over ``times`` (trapezoid rule, divided by the range).

    Matches ``sksurv.metrics.integrated_brier_score`` (ties: see the module notes).
    """
    times = np.atleast_1d(np.asarray(times, dtype=float))
    if times.size < 2:
        raise DataValidationError(
            ValidationReport(
                [Problem(None, None, "times", times.tolist(), "at least two time points")],
                source="ibs",
            )
        )
    bs = brier_score(y, surv, times, weights=weights, y_train=y_train)
    val = np.trapezoid(bs, times, axis=-1) / (times[-1] - times[0])
    return val if np.ndim(val) else float(val)


def scaled_brier(y: np.ndarray, surv, horizon: float, *, weights=None):
    """Index of prediction accuracy: 1 − Brier(model) / Brier(Kaplan–Meier null model)."""
    y = check_surv(y)
    n = y.shape[0]
    w, two_d = as_weights(weights, n)
    s = np.asarray(surv, float).reshape(n, 1)
    bs = brier_score(y, s, [horizon], weights=w if two_d else w[0]).reshape(-1)
    s0 = km_at(y, [horizon], w)[:, 0]  # (B,)
    null = np.stack(
        [
            brier_score(y, np.full((n, 1), s0[b]), [horizon], weights=w[b : b + 1])[0, 0]
            for b in range(w.shape[0])
        ]
    )
    val = 1.0 - bs / null
    return val if two_d else float(val[0])
