"""Calibration of predicted risks at a horizon.

Predicted risk means the probability of the event by ``horizon`` months,
1 − S(horizon | x). Observed risk is estimated with Kaplan–Meier (censoring handled);
follow-up is administratively censored at the horizon for slope and curve.

- :func:`calibration_in_the_large` — observed (KM) / expected (mean predicted) ratio.
- :func:`calibration_slope` — coefficient of a Cox model on cloglog(predicted risk)
  (1 = ideal, < 1 = predictions too extreme).
- :func:`calibration_table` — observed vs predicted by risk group (KM with Greenwood CI).
- :func:`calibration_curve` — smooth curve by hazard regression (Austin, Harrell & van
  Klaveren, Stat Med 2020): Cox model on a restricted cubic spline of
  cloglog(predicted); gives ICI, E50, E90 and Emax.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hccstrat.evaluation._core import as_weights, check_pred, check_surv, km_at, squeeze
from hccstrat.evaluation._cox import breslow_cumhaz, cox_fit, cox_slope
from hccstrat.exceptions import DataValidationError, Problem, ValidationReport

__all__ = [
    "CalibrationCurve",
    "calibration_curve",
    "calibration_in_the_large",
    "calibration_slope",
    "calibration_table",
    "cloglog",
    "rcs_basis",
]

_EPS = 1e-6


def cloglog(p) -> np.ndarray:
    """log(−log(1 − p)), clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, float), _EPS, 1 - _EPS)
    return np.log(-np.log1p(-p))


def _truncate(y: np.ndarray, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    time = np.asarray(y["time"], float)
    event = np.asarray(y["event"], bool) & (time <= horizon)
    return np.minimum(time, horizon), event


def calibration_in_the_large(y: np.ndarray, risk, horizon: float = 24.0, *, weights=None) -> dict:
    """Observed vs expected risk by the horizon.

    Returns
    -------
    dict
        ``observed`` (1 − KM at horizon), ``expected`` (mean predicted risk), ``oe_ratio``
        and ``difference`` (observed − expected); arrays of shape (B,) for 2-D weights.
    """
    y = check_surv(y)
    n = y.shape[0]
    p = check_pred(risk, n, where="risk")
    w, two_d = as_weights(weights, n)
    obs = 1.0 - km_at(y, [horizon], w)[:, 0]
    exp = (w * p).sum(axis=1) / w.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        oe = obs / exp
    return {
        "observed": squeeze(obs, two_d),
        "expected": squeeze(exp, two_d),
        "oe_ratio": squeeze(oe, two_d),
        "difference": squeeze(obs - exp, two_d),
    }


def calibration_slope(y: np.ndarray, risk, horizon: float = 24.0, *, weights=None):
    """Calibration slope: Cox coefficient of cloglog(predicted risk), follow-up cut at horizon.

    Returns
    -------
    float or ndarray (B,)
        NaN for a weight row (bootstrap resample) without an event by the horizon.

    Raises
    ------
    DataValidationError
        For 1-D use when no event occurs by the horizon (the slope is not estimable).
    """
    y = check_surv(y)
    n = y.shape[0]
    p = check_pred(risk, n, where="risk")
    w, two_d = as_weights(weights, n)
    time, event = _truncate(y, horizon)
    if not two_d and not event[w[0] > 0].any():
        raise DataValidationError(
            ValidationReport(
                [
                    Problem(
                        None,
                        None,
                        "calibration_slope",
                        "no event by the horizon",
                        f"at least one event by {horizon:g} months",
                    )
                ],
                source="calibration_slope",
            ),
            hint="check the event indicator, follow-up times and horizon",
        )
    return squeeze(cox_slope(cloglog(p), time, event, w), two_d)


def _km_greenwood(time: np.ndarray, event: np.ndarray, horizon: float) -> tuple[float, float]:
    """KM survival at horizon and its Greenwood standard error."""
    uniq, inv = np.unique(time, return_inverse=True)
    d = np.bincount(inv, weights=event.astype(float), minlength=uniq.size)
    c = np.bincount(inv, minlength=uniq.size).astype(float)
    at_risk = np.cumsum(c[::-1])[::-1]
    keep = (uniq <= horizon) & (d > 0)
    h = d[keep] / at_risk[keep]
    s = float(np.prod(1 - h))
    with np.errstate(divide="ignore", invalid="ignore"):
        var = s**2 * np.sum(d[keep] / (at_risk[keep] * (at_risk[keep] - d[keep])))
    return s, float(np.sqrt(var)) if np.isfinite(var) else float("nan")


def calibration_table(
    y: np.ndarray, risk, horizon: float = 24.0, *, n_groups: int = 10, bins=None
) -> pd.DataFrame:
    """Observed (KM) vs mean predicted risk by risk group.

    Parameters
    ----------
    n_groups : int
        Equal-size groups by predicted risk (ignored when ``bins`` is given).
    bins : sequence of float, optional
        Explicit cut-points on predicted risk (e.g. ``[0, 0.5, 1]``).

    Returns
    -------
    DataFrame
        ``group, n, events, predicted, observed, observed_lo, observed_hi``.
    """
    y = check_surv(y)
    n = y.shape[0]
    p = check_pred(risk, n, where="risk")
    if bins is None:
        ranks = np.argsort(np.argsort(p, kind="stable"), kind="stable")
        grp = (ranks * n_groups) // n
    else:
        grp = np.clip(np.digitize(p, np.asarray(bins)[1:-1]), 0, len(bins) - 2)
    time = np.asarray(y["time"], float)
    event = np.asarray(y["event"], bool)
    rows = []
    for g in np.unique(grp):
        m = grp == g
        s, se = _km_greenwood(time[m], event[m], horizon)
        rows.append(
            {
                "group": int(g) + 1,
                "n": int(m.sum()),
                "events": int((event[m] & (time[m] <= horizon)).sum()),
                "predicted": float(p[m].mean()),
                "observed": 1 - s,
                "observed_lo": max(0.0, 1 - s - 1.96 * se),
                "observed_hi": min(1.0, 1 - s + 1.96 * se),
            }
        )
    return pd.DataFrame(rows)


def rcs_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Restricted cubic spline basis (Harrell's parametrisation), columns: x and k−2 terms."""
    x = np.asarray(x, float)
    k = np.asarray(knots, float)
    kk = k.size
    norm = (k[-1] - k[0]) ** 2
    cols = [x]
    for j in range(kk - 2):
        term = (
            np.maximum(x - k[j], 0) ** 3
            - np.maximum(x - k[-2], 0) ** 3 * (k[-1] - k[j]) / (k[-1] - k[-2])
            + np.maximum(x - k[-1], 0) ** 3 * (k[-2] - k[j]) / (k[-1] - k[-2])
        )
        cols.append(term / norm)
    return np.column_stack(cols)


@dataclass
class CalibrationCurve:
    """Smoothed calibration at a horizon (hazard regression).

    Attributes
    ----------
    predicted, observed : ndarray
        Curve points (sorted by predicted risk) for plotting.
    ici, e50, e90, emax : float
        Mean, median, 90th percentile and maximum of |observed − predicted| over patients.
    horizon : float
    """

    predicted: np.ndarray
    observed: np.ndarray
    ici: float
    e50: float
    e90: float
    emax: float
    horizon: float
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Numbers of the curve (for reports)."""
        return {
            "ici": self.ici,
            "e50": self.e50,
            "e90": self.e90,
            "emax": self.emax,
            "horizon": self.horizon,
        }


def calibration_curve(
    y: np.ndarray, risk, horizon: float = 24.0, *, n_knots: int = 3, n_points: int = 50
) -> CalibrationCurve:
    """Smoothed calibration curve and ICI/E50/E90 by hazard regression.

    A Cox model of the outcome (cut at the horizon) on a restricted cubic spline of
    cloglog(predicted risk), knots at Harrell's default quantiles, gives each
    patient's calibrated ("observed") risk 1 − exp(−H0(horizon)·exp(lp)).
    """
    y = check_surv(y)
    n = y.shape[0]
    p = check_pred(risk, n, where="risk")
    x = cloglog(p)
    quant = {3: [0.1, 0.5, 0.9], 4: [0.05, 0.35, 0.65, 0.95], 5: [0.05, 0.275, 0.5, 0.725, 0.95]}
    knots = np.unique(np.quantile(x, quant.get(n_knots, quant[3])))
    basis = rcs_basis(x, knots) if knots.size >= 3 else x[:, None]
    time, event = _truncate(y, horizon)
    beta = cox_fit(basis, time, event, penalty=1e-3)
    lp = basis @ beta
    h0 = breslow_cumhaz(lp, time, event, [horizon])[0]
    obs = 1 - np.exp(-h0 * np.exp(lp))
    diff = np.abs(obs - p)
    grid = np.quantile(p, np.linspace(0.01, 0.99, n_points))
    gx = cloglog(grid)
    gb = rcs_basis(gx, knots) if knots.size >= 3 else gx[:, None]
    gobs = 1 - np.exp(-h0 * np.exp(gb @ beta))
    return CalibrationCurve(
        predicted=grid,
        observed=gobs,
        ici=float(diff.mean()),
        e50=float(np.median(diff)),
        e90=float(np.quantile(diff, 0.9)),
        emax=float(diff.max()),
        horizon=float(horizon),
    )
