"""One call for the full performance of predicted risks on one cohort.

:func:`assess` gathers discrimination, calibration, overall accuracy and clinical
utility with bootstrap intervals into a :class:`PerformanceResult`, which holds plain
numbers and curve points only — reports are drawn from it without re-running anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hccstrat.evaluation._core import check_pred, check_surv, km_curve
from hccstrat.evaluation.bootstrap import bootstrap, default_metrics
from hccstrat.evaluation.calibration import calibration_curve, calibration_table
from hccstrat.evaluation.decision import classification_at, decision_curve
from hccstrat.evaluation.discrimination import cumulative_dynamic_auc

__all__ = ["PerformanceResult", "assess", "km_by_group"]


@dataclass
class PerformanceResult:
    """Performance of one set of predictions on one cohort (JSON-ready numbers).

    Attributes
    ----------
    name : str
    n, events : int
        Patients and events by the horizon.
    metrics : dict
        ``metric -> {"estimate", "ci": [lo, hi], "se"}``.
    calibration : dict
        ``table`` (records), ``curve`` (predicted/observed lists), ICI/E50/E90/Emax.
    td_auc : dict
        ``times`` and ``auc`` lists.
    decision : dict
        Decision curve records.
    classification : dict
        Sensitivity, specificity, PPV, NPV at the threshold.
    km : dict
        Kaplan–Meier curves by predicted-risk group.
    """

    name: str
    n: int
    events: int
    horizon: float
    threshold: float
    metrics: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    td_auc: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    classification: dict[str, Any] = field(default_factory=dict)
    km: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return dict(self.__dict__)

    def estimate(self, metric: str) -> float:
        """Point estimate of one metric."""
        return float(self.metrics[metric]["estimate"])


def km_by_group(y: np.ndarray, risk, threshold: float, *, max_time: float | None = None) -> dict:
    """Kaplan–Meier curves of the low (< threshold) and high risk groups."""
    p = np.asarray(risk, float)
    out = {}
    for label, m in (("low", p < threshold), ("high", p >= threshold)):
        if not m.any():
            continue
        t, s = km_curve(
            np.asarray(y["time"][m], float),
            np.asarray(y["event"][m], bool),
            np.ones((1, int(m.sum()))),
        )
        keep = t <= (max_time if max_time is not None else np.inf)
        out[label] = {
            "time": [0.0, *t[keep].tolist()],
            "survival": [1.0, *s[0, keep].tolist()],
            "n": int(m.sum()),
        }
    return out


def assess(
    y: np.ndarray,
    risk,
    *,
    name: str = "cohort",
    horizon: float = 24.0,
    threshold: float = 0.5,
    n_bootstrap: int = 1000,
    seed: int = 0,
    clusters=None,
    comparators: dict[str, np.ndarray] | None = None,
) -> PerformanceResult:
    """Evaluate predicted risks by ``horizon`` on one cohort.

    Parameters
    ----------
    y : structured array
    risk : array-like (n,)
        Predicted probability of the event by ``horizon``.
    n_bootstrap : int
        Resamples for the confidence intervals (0 = none).
    clusters : array-like, optional
        Centre labels for a cluster bootstrap.
    comparators : dict, optional
        Other strategies for the decision curve (e.g. BCLC, ERASL risks or 0/1 rules).
    """
    y = check_surv(y)
    p = check_pred(risk, y.shape[0], where="risk")
    time = np.asarray(y["time"], float)
    events = int((y["event"] & (time <= horizon)).sum())
    if n_bootstrap > 0:
        boot = bootstrap(
            y,
            p,
            default_metrics(horizon, threshold),
            n_resamples=n_bootstrap,
            seed=seed,
            clusters=clusters,
        ).to_dict()
    else:
        boot = bootstrap(y, p, default_metrics(horizon, threshold), n_resamples=0).to_dict()
    cal: dict[str, Any] = {"table": calibration_table(y, p, horizon).to_dict("records")}
    try:
        curve = calibration_curve(y, p, horizon)
        cal.update(curve.summary())
        cal["curve"] = {"predicted": curve.predicted.tolist(), "observed": curve.observed.tolist()}
    except Exception as err:  # a degenerate cohort must not stop the report
        cal["curve_error"] = str(err)
    grid = np.arange(6.0, max(6.0, float(np.quantile(time, 0.9))) + 1e-9, 3.0)
    grid = grid[grid < time.max()]
    auc = cumulative_dynamic_auc(y, p, grid).tolist() if grid.size else []
    dc = decision_curve(
        y, {name: p, **(comparators or {})}, horizon, np.round(np.arange(0.05, 0.96, 0.05), 2)
    )
    cls = classification_at(y, p, horizon, threshold)
    return PerformanceResult(
        name=name,
        n=int(p.size),
        events=events,
        horizon=float(horizon),
        threshold=float(threshold),
        metrics=boot,
        calibration=cal,
        td_auc={"times": grid.tolist(), "auc": auc},
        decision={"records": dc.to_dict("records")},
        classification=cls,
        km=km_by_group(y, p, threshold, max_time=float(np.quantile(time, 0.95))),
    )
