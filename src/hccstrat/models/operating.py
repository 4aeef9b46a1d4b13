"""Calibration of horizon probabilities and operating characteristics of a threshold.

Censoring is handled by inverse-probability-of-censoring weights (Kaplan–Meier
estimate of the censoring distribution, :func:`hccstrat.models._base.ipcw_weights`):
patients censored before the horizon have unknown status and weight 0; the others
are up-weighted by ``1 / G(min(T, horizon)-)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from hccstrat.exceptions import ModelError
from hccstrat.models._base import ipcw_weights

__all__ = ["HorizonCalibrator", "operating_characteristics", "threshold_table"]

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


class HorizonCalibrator(BaseEstimator):
    """Map raw horizon probabilities to calibrated ones (IPCW-weighted).

    Parameters
    ----------
    method : {"platt", "isotonic", "none"}
        Logistic recalibration on the logit (intercept + slope), isotonic regression,
        or identity.
    horizon : float
        Months.
    """

    def __init__(self, method: str = "platt", horizon: float = 24.0) -> None:
        self.method = method
        self.horizon = horizon

    def fit(self, p_raw: np.ndarray, y: np.ndarray) -> HorizonCalibrator:
        """Fit on raw probabilities and the survival target."""
        event, w = ipcw_weights(y, self.horizon)
        keep = w > 0
        if self.method == "none":
            self.model_ = None
        elif self.method == "platt":
            from sklearn.linear_model import LogisticRegression

            if len(np.unique(event[keep])) < 2:
                raise ModelError(
                    "calibration needs both events and event-free patients at the horizon"
                )
            self.model_ = LogisticRegression(C=1e4).fit(
                _logit(p_raw[keep])[:, None], event[keep], sample_weight=w[keep]
            )
        elif self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            self.model_ = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(
                p_raw[keep], event[keep].astype(float), sample_weight=w[keep]
            )
        else:
            raise ModelError(
                f"unknown calibration {self.method!r}", hint="use 'platt', 'isotonic' or 'none'"
            )
        return self

    def transform(self, p_raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities in [0, 1]."""
        p_raw = np.asarray(p_raw, float)
        if self.model_ is None:
            return np.clip(p_raw, 0, 1)
        if self.method == "platt":
            return self.model_.predict_proba(_logit(p_raw)[:, None])[:, 1]
        return np.clip(self.model_.predict(p_raw), 0, 1)


def operating_characteristics(
    score: np.ndarray, y: np.ndarray, *, threshold: float = 0.5, horizon: float = 24.0
) -> dict:
    """Operating characteristics of ``score >= threshold`` for the event by ``horizon``.

    Parameters
    ----------
    score : array of float
        Predicted probability of the event by the horizon (e.g. the PRE score).
    y : structured array
        Survival target (``event``, ``time`` in months).
    threshold : float
        High risk when ``score >= threshold``.
    horizon : float
        Months.

    Returns
    -------
    dict
        ``n``, ``n_status_known``, ``threshold``, ``high_risk_fraction``,
        ``sensitivity``, ``specificity``, ``ppv``, ``npv``, ``mean_predicted``,
        ``observed_risk`` (IPCW) — sensitivity etc. IPCW-weighted.
    """
    score = np.asarray(score, float)
    if len(score) != len(y):
        raise ModelError(
            f"{len(score)} scores for {len(y)} targets", hint="pass one score per patient"
        )
    event, w = ipcw_weights(y, horizon)
    high = score >= threshold

    def ratio(num_mask, den_mask):
        den = w[den_mask].sum()
        return float(w[num_mask & den_mask].sum() / den) if den > 0 else float("nan")

    return {
        "n": len(score),
        "n_status_known": int((w > 0).sum()),
        "threshold": float(threshold),
        "horizon_months": float(horizon),
        "high_risk_fraction": float(high.mean()),
        "sensitivity": ratio(high, event),
        "specificity": ratio(~high, ~event),
        "ppv": ratio(event, high),
        "npv": ratio(~event, ~high),
        "mean_predicted": float(score.mean()),
        "observed_risk": float((w * event).sum() / w.sum()) if w.sum() > 0 else float("nan"),
    }


def threshold_table(
    score: np.ndarray,
    y: np.ndarray,
    thresholds=(0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    *,
    horizon: float = 24.0,
) -> pd.DataFrame:
    """:func:`operating_characteristics` at several thresholds, one row each."""
    return pd.DataFrame(
        [operating_characteristics(score, y, threshold=t, horizon=horizon) for t in thresholds]
    )
