"""A small weighted Cox model (Breslow ties, Newton–Raphson) used for calibration
slopes, hazard-regression calibration curves and recalibration.

Vectorised over bootstrap weight rows for the one-covariate case.
"""

from __future__ import annotations

import numpy as np

from hccstrat.exceptions import ModelError

__all__ = ["breslow_cumhaz", "cox_fit", "cox_slope"]


def cox_fit(
    X: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    *,
    weights=None,
    offset=None,
    penalty: float = 0.0,
    max_iter: int = 50,
    tol: float = 1e-9,
) -> np.ndarray:
    """Coefficients of a weighted Cox model with Breslow ties.

    Parameters
    ----------
    X : ndarray (n, p)
    time, event : ndarray (n,)
    weights : ndarray (n,), optional
    offset : ndarray (n,), optional
        Fixed linear-predictor term.
    penalty : float
        Ridge penalty (0.5 * penalty * ||beta||^2) for stability in small samples.

    Returns
    -------
    ndarray (p,)
    """
    X = np.asarray(X, float).reshape(len(time), -1)
    n, p = X.shape
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    off = np.zeros(n) if offset is None else np.asarray(offset, float)
    order = np.argsort(-time, kind="stable")  # descending: cumsum gives risk sets
    Xs, ts, es, ws, os_ = X[order], time[order], event[order].astype(float), w[order], off[order]
    # last index of each tie group in descending order = risk set includes all tied
    _, first_desc = np.unique(-ts, return_index=True)
    grp_end = np.r_[first_desc[1:], n] - 1
    grp_id = np.repeat(np.arange(first_desc.size), np.diff(np.r_[first_desc, n]))
    beta = np.zeros(p)
    for _ in range(max_iter):
        eta = Xs @ beta + os_
        eta -= eta.max()
        r = ws * np.exp(eta)
        s0 = np.cumsum(r)[grp_end][grp_id]
        s1 = np.cumsum(r[:, None] * Xs, axis=0)[grp_end][grp_id]
        s2 = np.cumsum(r[:, None, None] * Xs[:, :, None] * Xs[:, None, :], axis=0)[grp_end][grp_id]
        de = ws * es
        s0 = np.where(s0 > 0, s0, 1.0)
        xbar = s1 / s0[:, None]
        grad = (de[:, None] * (Xs - xbar)).sum(axis=0) - penalty * beta
        info = (
            de[:, None, None] * (s2 / s0[:, None, None] - xbar[:, :, None] * xbar[:, None, :])
        ).sum(axis=0)
        info = info + penalty * np.eye(p)
        try:
            step = np.linalg.solve(info + 1e-12 * np.eye(p), grad)
        except np.linalg.LinAlgError as err:
            raise ModelError(
                "Cox model did not converge (singular information matrix)",
                hint="check for constant or collinear predictors",
            ) from err
        step = np.clip(step, -2.0, 2.0)  # damped Newton: no overshoot on near-separation
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    return beta


def breslow_cumhaz(
    lp: np.ndarray, time: np.ndarray, event: np.ndarray, at, *, weights=None
) -> np.ndarray:
    """Breslow baseline cumulative hazard H0 at times ``at`` given the linear predictor."""
    w = np.ones(len(time)) if weights is None else np.asarray(weights, float)
    at = np.atleast_1d(np.asarray(at, float))
    order = np.argsort(time, kind="stable")
    ts = np.asarray(time, float)[order]
    log_r = np.log(np.where(w[order] > 0, w[order], 1e-300)) + np.asarray(lp, float)[order]
    uniq, start = np.unique(ts, return_index=True)
    d = np.add.reduceat((w * event)[order], start)
    log_grp = np.logaddexp.reduceat(log_r, start)
    log_rs = np.logaddexp.accumulate(log_grp[::-1])[::-1]  # log of risk-set sums
    inc = np.where(d > 0, d * np.exp(-log_rs), 0.0)
    cum = np.cumsum(inc)
    idx = np.searchsorted(uniq, at, side="right") - 1
    return np.where(idx >= 0, cum[np.clip(idx, 0, None)], 0.0)


def cox_slope(
    x: np.ndarray, time: np.ndarray, event: np.ndarray, W: np.ndarray, *, n_iter: int = 8
) -> np.ndarray:
    """Coefficient of a one-covariate Cox model for every weight row of ``W`` (B, n).

    Rows without any (weighted) event have no estimate: NaN, not 0.
    """
    order = np.argsort(-time, kind="stable")
    xs, ts, es = x[order], time[order], event[order].astype(float)
    Ws = W[:, order]
    _, first_desc = np.unique(-ts, return_index=True)
    n = ts.size
    grp_end = np.r_[first_desc[1:], n] - 1
    grp_id = np.repeat(np.arange(first_desc.size), np.diff(np.r_[first_desc, n]))
    beta = np.zeros(W.shape[0])
    xs_c = xs - xs.mean()
    de = Ws * es
    for _ in range(n_iter):
        eta = beta[:, None] * xs_c
        eta -= eta.max(axis=1, keepdims=True)
        r = Ws * np.exp(eta)
        s0 = np.cumsum(r, axis=1)[:, grp_end][:, grp_id]
        s1 = np.cumsum(r * xs_c, axis=1)[:, grp_end][:, grp_id]
        s2 = np.cumsum(r * xs_c**2, axis=1)[:, grp_end][:, grp_id]
        with np.errstate(invalid="ignore", divide="ignore"):
            xbar = np.where(s0 > 0, s1 / np.where(s0 > 0, s0, 1), 0)
            grad = (de * (xs_c - xbar)).sum(axis=1)
            info = (de * (np.where(s0 > 0, s2 / np.where(s0 > 0, s0, 1), 0) - xbar**2)).sum(axis=1)
            beta = beta + np.where(info > 0, grad / np.where(info > 0, info, 1), 0)
    return np.where(de.sum(axis=1) > 0, beta, np.nan)
