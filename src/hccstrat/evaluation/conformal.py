"""Mondrian (group-conditional) conformal prediction for the event by a horizon.

Each patient's outcome at the horizon is binary (event by ``horizon`` or not).
The nonconformity score of a calibration patient is 1 − (predicted probability of the
observed outcome). Per group (e.g. centre) — the *Mondrian* taxonomy — the
``(1 − alpha)`` weighted quantile of the scores gives prediction sets with coverage
>= 1 − alpha within each centre. Patients censored before the horizon have unknown
status: the others are weighted by the inverse probability of censoring (weighted
conformal prediction, Tibshirani et al. 2019), so the quantile is not biased towards
short follow-up.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hccstrat.evaluation._core import censoring_at, check_pred, check_surv
from hccstrat.exceptions import ConfigError, NotFittedError

__all__ = ["MondrianConformal"]

log = logging.getLogger(__name__)


def _weighted_quantile(scores: np.ndarray, w: np.ndarray, level: float) -> float:
    """Smallest score whose normalised cumulative weight (with one extra test point of
    average weight at +inf) reaches ``level``."""
    if scores.size == 0:
        return np.inf
    o = np.argsort(scores)
    s, ww = scores[o], w[o]
    cum = np.cumsum(ww) / (ww.sum() + ww.mean())
    idx = np.searchsorted(cum, level, side="left")
    return float(s[idx]) if idx < s.size else np.inf


class MondrianConformal:
    """Group-conditional conformal prediction sets for the event by ``horizon``.

    Parameters
    ----------
    alpha : float
        Miscoverage (0.1 gives 90 % sets).
    horizon : float
        Months.
    min_group : int
        Groups with fewer calibration patients with known status use the pooled
        quantile (logged).
    """

    def __init__(self, alpha: float = 0.1, horizon: float = 24.0, min_group: int = 20) -> None:
        self.alpha = alpha
        self.horizon = horizon
        self.min_group = min_group

    def _status(self, y):
        time = np.asarray(y["time"], float)
        event = np.asarray(y["event"], bool) & (time <= self.horizon)
        known = event | (time >= self.horizon)
        return event, known

    def fit(self, risk, y, groups=None) -> MondrianConformal:
        """Calibrate on held-out patients (not those the model was trained on)."""
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha={self.alpha} must lie in (0, 1)", hint="e.g. alpha=0.1")
        y = check_surv(y)
        n = y.shape[0]
        p = check_pred(risk, n, where="risk")
        g = np.zeros(n, dtype=object) if groups is None else np.asarray(groups, dtype=object)
        event, known = self._status(y)
        time = np.asarray(y["time"], float)
        gi = censoring_at(y, np.minimum(time, self.horizon), np.ones((1, n)))[0]
        w = np.where(known & (gi > 0), 1.0 / np.where(gi > 0, gi, 1.0), 0.0)
        score = np.where(event, 1 - p, p)
        level = 1 - self.alpha
        self.pooled_quantile_ = _weighted_quantile(score[known], w[known], level)
        self.quantiles_ = {}
        for lab in pd.unique(g):
            m = (g == lab) & known
            if m.sum() < self.min_group:
                log.info(
                    "group %r has %d calibration patients; using the pooled quantile", lab, m.sum()
                )
                self.quantiles_[lab] = self.pooled_quantile_
            else:
                self.quantiles_[lab] = _weighted_quantile(score[m], w[m], level)
        return self

    def _q(self, groups, n):
        if not hasattr(self, "quantiles_"):
            raise NotFittedError("MondrianConformal is not fitted", hint="call fit() first")
        g = np.zeros(n, dtype=object) if groups is None else np.asarray(groups, dtype=object)
        return np.array([self.quantiles_.get(lab, self.pooled_quantile_) for lab in g], float)

    def predict_set(self, risk, groups=None) -> np.ndarray:
        """Boolean array (n, 2): whether "no event" / "event" by horizon is in the set."""
        p = np.asarray(risk, float)
        q = self._q(groups, p.size)
        return np.column_stack([p <= q, 1 - p <= q])

    def coverage(self, risk, y, groups=None) -> pd.DataFrame:
        """Empirical coverage and set sizes per group among patients with known status."""
        p = np.asarray(risk, float)
        sets = self.predict_set(p, groups)
        event, known = self._status(check_surv(y))
        covered = np.where(event, sets[:, 1], sets[:, 0])
        g = np.zeros(p.size, dtype=object) if groups is None else np.asarray(groups, dtype=object)
        rows = []
        for lab in pd.unique(g):
            m = (g == lab) & known
            rows.append(
                {
                    "group": lab,
                    "n_known": int(m.sum()),
                    "coverage": float(covered[m].mean()) if m.any() else np.nan,
                    "mean_set_size": float(sets[m].sum(axis=1).mean()) if m.any() else np.nan,
                    "quantile": self.quantiles_.get(lab, self.pooled_quantile_),
                }
            )
        return pd.DataFrame(rows)
