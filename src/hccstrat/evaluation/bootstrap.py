"""Vectorised bootstrap: all resamples of a metric in one call via case weights.

A resample of n patients drawn with replacement is the same as giving each patient
its multinomial draw count as a weight, so every metric of
:mod:`hccstrat.evaluation` that takes ``weights`` of shape ``(B, n)`` evaluates ``B``
resamples at once. Cluster bootstrap (by centre) draws centres with replacement and
gives each patient the count of its centre. Paired comparisons evaluate two models
on the same resamples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hccstrat.evaluation.brier import brier_score
from hccstrat.evaluation.calibration import calibration_in_the_large, calibration_slope
from hccstrat.evaluation.decision import net_benefit
from hccstrat.evaluation.discrimination import cumulative_dynamic_auc, harrell_c, uno_c
from hccstrat.exceptions import ConfigError

__all__ = [
    "BootstrapResult",
    "MetricFn",
    "PairedResult",
    "bootstrap",
    "default_metrics",
    "paired_bootstrap",
    "resample_weights",
]

#: ``f(y, risk_at_horizon, weights (B, n)) -> ndarray (B,)``
MetricFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def default_metrics(horizon: float = 24.0, threshold: float = 0.5) -> dict[str, MetricFn]:
    """The metrics of a validation report, each vectorised over weight rows.

    Predictions are risks by ``horizon`` (probabilities).
    """
    h = float(horizon)
    return {
        "harrell_c": lambda y, p, w: harrell_c(y, p, weights=w),
        "uno_c": lambda y, p, w: uno_c(y, p, tau=h, weights=w),
        "td_auc": lambda y, p, w: cumulative_dynamic_auc(y, p, [h], weights=w)[:, 0],
        "brier": lambda y, p, w: brier_score(y, 1 - p, [h], weights=w)[:, 0],
        "oe_ratio": lambda y, p, w: calibration_in_the_large(y, p, h, weights=w)["oe_ratio"],
        "calibration_slope": lambda y, p, w: calibration_slope(y, p, h, weights=w),
        "net_benefit": lambda y, p, w: net_benefit(y, p, h, [threshold], weights=w)[:, 0],
    }


def resample_weights(
    n: int, n_resamples: int, *, seed: int = 0, clusters=None, chunk: int = 100
) -> Iterator[np.ndarray]:
    """Yield blocks of bootstrap weights (multinomial counts), ``(<=chunk, n)`` each.

    Parameters
    ----------
    clusters : array-like (n,), optional
        Cluster label per patient (e.g. centre): clusters are resampled instead.
    """
    rng = np.random.default_rng(seed)
    if clusters is not None:
        labels, inv = np.unique(np.asarray(clusters), return_inverse=True)
        k = labels.size
        if k < 2:
            raise ConfigError(
                "cluster bootstrap needs at least two clusters",
                hint="use the patient-level bootstrap for a single centre",
            )
    for b0 in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - b0)
        if clusters is None:
            yield rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(float)
        else:
            counts = rng.multinomial(k, np.full(k, 1.0 / k), size=b).astype(float)
            yield counts[:, inv]


@dataclass
class BootstrapResult:
    """Point estimates and bootstrap distributions of several metrics.

    Attributes
    ----------
    estimate : dict
        Metric on the original data.
    samples : dict
        Metric on each resample (ndarray of length ``n_resamples``).
    alpha : float
        1 − confidence level of the percentile intervals.
    """

    estimate: dict[str, float]
    samples: dict[str, np.ndarray]
    alpha: float = 0.05
    meta: dict = field(default_factory=dict)

    def ci(self, name: str) -> tuple[float, float]:
        """Percentile confidence interval of one metric."""
        s = self.samples[name]
        s = s[np.isfinite(s)]
        if s.size == 0:
            return float("nan"), float("nan")
        lo, hi = np.quantile(s, [self.alpha / 2, 1 - self.alpha / 2])
        return float(lo), float(hi)

    def to_frame(self) -> pd.DataFrame:
        """One row per metric: estimate, CI bounds, bootstrap SE."""
        rows = []
        for k, v in self.estimate.items():
            lo, hi = self.ci(k)
            s = self.samples[k]
            rows.append(
                {
                    "metric": k,
                    "estimate": v,
                    "ci_low": lo,
                    "ci_high": hi,
                    "se": float(np.nanstd(s, ddof=1)) if s.size > 1 else float("nan"),
                }
            )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        """Estimates and intervals (no resample arrays)."""
        return {
            r["metric"]: {
                "estimate": r["estimate"],
                "ci": [r["ci_low"], r["ci_high"]],
                "se": r["se"],
            }
            for r in self.to_frame().to_dict("records")
        }


def _evaluate(metrics, y, p, w) -> dict[str, np.ndarray]:
    out = {}
    for name, fn in metrics.items():
        with np.errstate(all="ignore"):
            out[name] = np.asarray(fn(y, p, w), dtype=float).reshape(w.shape[0])
    return out


def bootstrap(
    y: np.ndarray,
    risk,
    metrics: Mapping[str, MetricFn] | None = None,
    *,
    horizon: float = 24.0,
    n_resamples: int = 1000,
    seed: int = 0,
    clusters=None,
    alpha: float = 0.05,
    chunk: int = 100,
) -> BootstrapResult:
    """Bootstrap confidence intervals of several metrics (vectorised).

    Parameters
    ----------
    y : structured array
    risk : array-like (n,)
        Predicted risk by ``horizon``.
    metrics : mapping, optional
        Name -> :data:`MetricFn`; default :func:`default_metrics`.
    n_resamples : int
    seed : int
    clusters : array-like, optional
        Cluster labels for a cluster (centre) bootstrap.

    Returns
    -------
    BootstrapResult
    """
    metrics = dict(metrics or default_metrics(horizon))
    p = np.asarray(risk, float)
    n = p.shape[0]
    est = {k: float(v[0]) for k, v in _evaluate(metrics, y, p, np.ones((1, n))).items()}
    parts: dict[str, list] = {k: [] for k in metrics}
    for w in resample_weights(n, n_resamples, seed=seed, clusters=clusters, chunk=chunk):
        for k, v in _evaluate(metrics, y, p, w).items():
            parts[k].append(v)
    samples = {k: np.concatenate(v) if v else np.empty(0) for k, v in parts.items()}
    return BootstrapResult(
        est,
        samples,
        alpha,
        {"n_resamples": n_resamples, "seed": seed, "cluster": clusters is not None},
    )


@dataclass
class PairedResult:
    """Model A minus model B on the same resamples, per metric."""

    difference: dict[str, float]
    ci: dict[str, tuple[float, float]]
    p_value: dict[str, float]

    def to_frame(self) -> pd.DataFrame:
        """One row per metric."""
        return pd.DataFrame(
            [
                {
                    "metric": k,
                    "difference": v,
                    "ci_low": self.ci[k][0],
                    "ci_high": self.ci[k][1],
                    "p_value": self.p_value[k],
                }
                for k, v in self.difference.items()
            ]
        )


def paired_bootstrap(
    y: np.ndarray,
    risk_a,
    risk_b,
    metrics: Mapping[str, MetricFn] | None = None,
    *,
    horizon: float = 24.0,
    n_resamples: int = 1000,
    seed: int = 0,
    clusters=None,
    alpha: float = 0.05,
) -> PairedResult:
    """Compare a model (A) with a baseline (B) on identical resamples.

    The two-sided p-value is twice the smaller tail share of resampled differences
    on either side of zero (percentile bootstrap test).
    """
    metrics = dict(metrics or default_metrics(horizon))
    ra = bootstrap(
        y, risk_a, metrics, n_resamples=n_resamples, seed=seed, clusters=clusters, alpha=alpha
    )
    rb = bootstrap(
        y, risk_b, metrics, n_resamples=n_resamples, seed=seed, clusters=clusters, alpha=alpha
    )
    diff, ci, pv = {}, {}, {}
    for k in metrics:
        d = ra.samples[k] - rb.samples[k]
        d = d[np.isfinite(d)]
        diff[k] = ra.estimate[k] - rb.estimate[k]
        lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2]) if d.size else (np.nan, np.nan)
        ci[k] = (float(lo), float(hi))
        pv[k] = float(min(1.0, 2 * min((d <= 0).mean(), (d >= 0).mean()))) if d.size else np.nan
    return PairedResult(diff, ci, pv)
