"""Recalibration of predicted risks at a horizon on a new population.

- ``"intercept"``: keep the ranking and the slope, re-estimate the baseline hazard
  (Cox model with cloglog(p) as offset): p' = 1 − exp(−H0' · exp(cloglog p)).
- ``"slope"``: intercept and slope: Cox model on cloglog(p): p' = 1 − exp(−H0'·exp(b·cloglog p)).
- ``"isotonic"``: monotone map from p to the observed event by the horizon, fitted on
  patients with known status weighted by inverse probability of censoring.
"""

from __future__ import annotations

import numpy as np

from hccstrat.evaluation._core import censoring_at, check_pred, check_surv
from hccstrat.evaluation._cox import breslow_cumhaz, cox_fit
from hccstrat.evaluation.calibration import cloglog
from hccstrat.exceptions import ConfigError, NotFittedError

__all__ = ["METHODS", "Recalibrator"]

METHODS = ("intercept", "slope", "isotonic")


class Recalibrator:
    """Update predicted risks by ``horizon`` to a new population (scikit-learn style).

    Parameters
    ----------
    method : {"intercept", "slope", "isotonic"}
    horizon : float
        Months.
    """

    def __init__(self, method: str = "slope", horizon: float = 24.0) -> None:
        self.method = method
        self.horizon = horizon

    def fit(self, risk, y) -> Recalibrator:
        """Learn the update from predicted risks and observed outcomes."""
        if self.method not in METHODS:
            raise ConfigError(
                f"unknown recalibration method {self.method!r}",
                hint=f"use one of {', '.join(METHODS)}",
            )
        y = check_surv(y)
        p = check_pred(risk, y.shape[0], where="risk")
        time = np.minimum(np.asarray(y["time"], float), self.horizon)
        event = np.asarray(y["event"], bool) & (np.asarray(y["time"], float) <= self.horizon)
        x = cloglog(p)
        if self.method == "intercept":
            self.slope_ = 1.0
            self.h0_ = float(breslow_cumhaz(x, time, event, [self.horizon])[0])
        elif self.method == "slope":
            self.slope_ = float(cox_fit(x[:, None], time, event)[0])
            self.h0_ = float(breslow_cumhaz(self.slope_ * x, time, event, [self.horizon])[0])
        else:
            from sklearn.isotonic import IsotonicRegression

            known = event | (np.asarray(y["time"], float) >= self.horizon)
            g = censoring_at(y, time, np.ones((1, p.size)))[0]
            w = np.where(known & (g > 0), 1 / np.where(g > 0, g, 1), 0)
            self.isotonic_ = IsotonicRegression(
                y_min=0, y_max=1, out_of_bounds="clip", increasing=True
            ).fit(p[known], event[known].astype(float), sample_weight=w[known])
        return self

    def transform(self, risk) -> np.ndarray:
        """Recalibrated risks."""
        p = np.asarray(risk, float)
        if self.method == "isotonic":
            if not hasattr(self, "isotonic_"):
                raise NotFittedError("Recalibrator is not fitted", hint="call fit() first")
            return np.clip(self.isotonic_.predict(p), 0, 1)
        if not hasattr(self, "h0_"):
            raise NotFittedError("Recalibrator is not fitted", hint="call fit() first")
        return 1 - np.exp(-self.h0_ * np.exp(self.slope_ * cloglog(p)))

    def fit_transform(self, risk, y) -> np.ndarray:
        """Fit, then transform the same risks."""
        return self.fit(risk, y).transform(risk)
