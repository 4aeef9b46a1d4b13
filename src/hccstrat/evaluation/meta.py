"""Random-effects meta-analysis (DerSimonian–Laird) of per-centre performance.

C-indices are pooled on the logit scale and O/E ratios on the log scale (Debray et
al., BMJ 2017); the pooled estimate, its confidence interval and the prediction
interval for a new centre are back-transformed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from hccstrat.exceptions import ConfigError

__all__ = ["MetaResult", "dersimonian_laird", "pool_metric"]


@dataclass
class MetaResult:
    """Pooled random-effects estimate (on the original scale when transformed)."""

    estimate: float
    ci_low: float
    ci_high: float
    pi_low: float
    pi_high: float
    tau2: float
    i2: float
    q: float
    k: int
    se: float

    def to_dict(self) -> dict:
        """Plain dict."""
        return asdict(self)


def dersimonian_laird(estimates, variances, *, alpha: float = 0.05) -> MetaResult:
    """DerSimonian–Laird random-effects pooling on the scale given.

    Prediction interval: estimate ± t_{k−2} · sqrt(tau² + se²) (Higgins et al. 2009).
    """
    y = np.asarray(estimates, float)
    v = np.asarray(variances, float)
    ok = np.isfinite(y) & np.isfinite(v) & (v > 0)
    y, v = y[ok], v[ok]
    k = y.size
    if k < 2:
        raise ConfigError(
            f"meta-analysis needs at least 2 centres with estimates, got {k}",
            hint="add centres or lower the minimum centre size",
        )
    w = 1 / v
    fixed = np.sum(w * y) / w.sum()
    q = float(np.sum(w * (y - fixed) ** 2))
    c = w.sum() - np.sum(w**2) / w.sum()
    tau2 = max(0.0, (q - (k - 1)) / c)
    wr = 1 / (v + tau2)
    est = float(np.sum(wr * y) / wr.sum())
    se = float(np.sqrt(1 / wr.sum()))
    z = stats.norm.ppf(1 - alpha / 2)
    tq = stats.t.ppf(1 - alpha / 2, k - 2) if k > 2 else np.nan
    half = tq * np.sqrt(tau2 + se**2)
    i2 = max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0
    return MetaResult(est, est - z * se, est + z * se, est - half, est + half, tau2, i2, q, k, se)


_TRANSFORMS = {
    "identity": (lambda x: x, lambda x: x, lambda x, se: se),
    "logit": (
        lambda x: np.log(x / (1 - x)),
        lambda z: 1 / (1 + np.exp(-z)),
        lambda x, se: se / (x * (1 - x)),
    ),
    "log": (np.log, np.exp, lambda x, se: se / x),
}


def pool_metric(estimates, ses, *, scale: str = "identity", alpha: float = 0.05) -> MetaResult:
    """Pool per-centre estimates with standard errors on a transformed scale.

    Parameters
    ----------
    scale : {"identity", "logit", "log"}
        "logit" for C-indices, "log" for O/E ratios; delta-method standard errors.
    """
    if scale not in _TRANSFORMS:
        raise ConfigError(f"unknown scale {scale!r}", hint="use identity, logit or log")
    fwd, back, dse = _TRANSFORMS[scale]
    x = np.asarray(estimates, float)
    s = np.asarray(ses, float)
    with np.errstate(all="ignore"):
        r = dersimonian_laird(fwd(x), dse(x, s) ** 2, alpha=alpha)
    if scale == "identity":
        return r
    return MetaResult(
        float(back(r.estimate)),
        float(back(r.ci_low)),
        float(back(r.ci_high)),
        float(back(r.pi_low)),
        float(back(r.pi_high)),
        r.tau2,
        r.i2,
        r.q,
        r.k,
        r.se,
    )
