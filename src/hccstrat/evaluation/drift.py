"""Drift over calendar time: input distribution tests and rolling performance.

- :func:`psi` — population stability index (< 0.1 stable, 0.1–0.25 moderate, > 0.25 major).
- :func:`input_drift` — per column: Kolmogorov–Smirnov (numeric) or chi-squared
  (categorical) test of a current period against a reference, plus PSI.
- :func:`rolling_performance` — C-index, O/E and calibration slope in sliding windows
  of the date of surgery.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hccstrat.evaluation.calibration import calibration_in_the_large, calibration_slope
from hccstrat.evaluation.discrimination import harrell_c
from hccstrat.exceptions import ConfigError

__all__ = ["input_drift", "psi", "rolling_performance"]


def psi(reference, current, *, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference`` (numeric).

    Bins are quantiles of the reference; empty bins get a share of 1e-4.
    """
    ref = np.asarray(reference, float)
    cur = np.asarray(current, float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    a = np.histogram(ref, edges)[0] / max(ref.size, 1)
    b = np.histogram(cur, edges)[0] / max(cur.size, 1)
    a, b = np.clip(a, 1e-4, None), np.clip(b, 1e-4, None)
    return float(np.sum((b - a) * np.log(b / a)))


def _psi_categorical(ref: pd.Series, cur: pd.Series) -> float:
    cats = sorted(set(ref.dropna().astype(str)) | set(cur.dropna().astype(str)))
    a = ref.dropna().astype(str).value_counts(normalize=True).reindex(cats, fill_value=0).to_numpy()
    b = cur.dropna().astype(str).value_counts(normalize=True).reindex(cats, fill_value=0).to_numpy()
    a, b = np.clip(a, 1e-4, None), np.clip(b, 1e-4, None)
    return float(np.sum((b - a) * np.log(b / a)))


def input_drift(
    reference: pd.DataFrame, current: pd.DataFrame, columns=None, *, alpha: float = 0.01
) -> pd.DataFrame:
    """Test each column for a change of distribution between two periods.

    Returns
    -------
    DataFrame
        ``column, kind, test, statistic, p_value, psi, drift`` (drift = p < alpha or PSI > 0.25).
    """
    from scipy import stats

    cols = list(columns) if columns is not None else [c for c in reference.columns if c in current]
    rows = []
    for c in cols:
        r, k = reference[c], current[c]
        if pd.api.types.is_bool_dtype(r) or not pd.api.types.is_numeric_dtype(r):
            cats = sorted(set(r.dropna().astype(str)) | set(k.dropna().astype(str)))
            if len(cats) < 2:
                continue
            table = np.array(
                [
                    r.dropna().astype(str).value_counts().reindex(cats, fill_value=0),
                    k.dropna().astype(str).value_counts().reindex(cats, fill_value=0),
                ]
            )
            table = table[:, table.sum(axis=0) > 0]
            stat, pval = stats.chi2_contingency(table)[:2]
            rows.append(
                {
                    "column": c,
                    "kind": "categorical",
                    "test": "chi2",
                    "statistic": float(stat),
                    "p_value": float(pval),
                    "psi": _psi_categorical(r, k),
                }
            )
        else:
            a, b = r.dropna().to_numpy(float), k.dropna().to_numpy(float)
            if a.size < 2 or b.size < 2:
                continue
            res = stats.ks_2samp(a, b)
            rows.append(
                {
                    "column": c,
                    "kind": "numeric",
                    "test": "KS",
                    "statistic": float(res.statistic),
                    "p_value": float(res.pvalue),
                    "psi": psi(a, b),
                }
            )
    out = pd.DataFrame(rows, columns=["column", "kind", "test", "statistic", "p_value", "psi"])
    out["drift"] = (out["p_value"] < alpha) | (out["psi"] > 0.25)
    return out


def rolling_performance(
    y: np.ndarray,
    risk,
    dates,
    *,
    horizon: float = 24.0,
    window_months: int = 12,
    step_months: int = 3,
    min_n: int = 30,
) -> pd.DataFrame:
    """Performance in sliding windows of calendar time (e.g. date of surgery).

    Parameters
    ----------
    y : structured array
    risk : array-like
        Predicted risk by ``horizon``.
    dates : array-like of datetime
        Calendar date defining each patient's window.
    window_months, step_months : int
    min_n : int
        Windows with fewer patients or fewer than 5 events are reported with NaN metrics.

    Returns
    -------
    DataFrame
        ``window_start, window_end, n, events, c_index, oe_ratio, calibration_slope,
        mean_predicted``.
    """
    if window_months <= 0 or step_months <= 0:
        raise ConfigError("window and step must be positive months", hint="e.g. 12 and 3")
    d = pd.to_datetime(pd.Series(dates)).reset_index(drop=True)
    p = np.asarray(risk, float)
    start = d.min().to_period("M").to_timestamp()
    end = d.max()
    rows = []
    cur = start
    while cur <= end:
        stop = cur + pd.DateOffset(months=window_months)
        m = ((d >= cur) & (d < stop)).to_numpy()
        n_ev = int((y["event"][m] & (y["time"][m] <= horizon)).sum())
        row = {
            "window_start": cur,
            "window_end": stop,
            "n": int(m.sum()),
            "events": n_ev,
            "mean_predicted": float(p[m].mean()) if m.any() else np.nan,
            "c_index": np.nan,
            "oe_ratio": np.nan,
            "calibration_slope": np.nan,
        }
        if m.sum() >= min_n and n_ev >= 5:
            row["c_index"] = harrell_c(y[m], p[m])
            row["oe_ratio"] = calibration_in_the_large(y[m], p[m], horizon)["oe_ratio"]
            row["calibration_slope"] = calibration_slope(y[m], p[m], horizon)
        rows.append(row)
        if stop > end:
            break
        cur = cur + pd.DateOffset(months=step_months)
    return pd.DataFrame(rows)
