"""Minimum sample sizes for developing and validating a survival prediction model.

Development (Riley et al., Stat Med 2019 part II; BMJ 2020), time-to-event outcome:

1. expected uniform shrinkage >= S (0.9): n = p / ((S − 1) · ln(1 − R²cs / S));
2. small optimism in Nagelkerke R² (<= delta, 0.05):
   S = R²cs / (R²cs + delta · max R²cs), then as (1);
3. precise overall risk at a time point: 95 % CI of S(t) = exp(−rate · t) within
   ± margin (exponential model; var(ln rate) = 1 / events).

max R²cs = 1 − exp(2 lnL0 / n), lnL0 / n = rate·meanfup·(ln rate − 1) for an exponential
null model with person-time n·meanfup.

Validation (Riley et al., Stat Med 2021 — binary-outcome formulae applied to the event
by the horizon, an approximation for censored data):

- O/E: SE(ln O/E) = sqrt((1 − F) / (n F)) below the target (CI width of O/E);
- C-statistic: Newcombe's SE formula below the target;
- calibration slope: SE of a logistic slope for a normal linear predictor, by
  information at the expected risk distribution.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from hccstrat.exceptions import ConfigError

__all__ = ["SampleSize", "development_sample_size", "validation_sample_size"]


@dataclass
class SampleSize:
    """Result of a sample-size calculation."""

    n: int
    events: float
    criteria: dict[str, int]
    details: dict

    def to_dict(self) -> dict:
        """Plain dict."""
        return asdict(self)

    def is_enough(self, n_available: int) -> bool:
        """Whether a cohort of ``n_available`` patients meets every criterion."""
        return n_available >= self.n


def _n_shrink(p: int, r2: float, s: float) -> int:
    return math.ceil(p / ((s - 1) * math.log(1 - r2 / s)))


def development_sample_size(
    *,
    parameters: int,
    r2_cs: float,
    rate: float,
    mean_followup: float,
    timepoint: float,
    shrinkage: float = 0.9,
    delta: float = 0.05,
    margin: float = 0.05,
    max_r2_cs: float | None = None,
) -> SampleSize:
    """Riley criteria for developing a survival model.

    Parameters
    ----------
    parameters : int
        Candidate predictor parameters.
    r2_cs : float
        Anticipated Cox–Snell R² (from an existing model).
    rate : float
        Overall event rate per unit time (per month when times are months).
    mean_followup : float
        Mean follow-up (same unit).
    timepoint : float
        Horizon for criterion 3.

    Examples
    --------
    Riley et al. (BMJ 2020) example: 30 parameters, R²cs 0.051, rate 0.065 per
    person-year, mean follow-up 2.07 years, time point 2 years: criterion 1 gives 5143.
    """
    if parameters < 1 or not 0 < r2_cs < 1 or rate <= 0 or mean_followup <= 0:
        raise ConfigError(
            "invalid sample-size inputs",
            hint="parameters >= 1, 0 < r2_cs < 1, rate > 0, mean_followup > 0",
        )
    ln_l0 = rate * mean_followup * (math.log(rate) - 1)
    mx = max_r2_cs if max_r2_cs is not None else 1 - math.exp(2 * ln_l0)
    if r2_cs >= mx:
        raise ConfigError(
            f"r2_cs={r2_cs} exceeds its maximum {mx:.3f}",
            hint="check the anticipated R² (Cox–Snell, not Nagelkerke)",
        )
    n1 = _n_shrink(parameters, r2_cs, shrinkage)
    s2 = r2_cs / (r2_cs + delta * mx)
    n2 = _n_shrink(parameters, r2_cs, s2)
    n3 = 1
    s_true = math.exp(-rate * timepoint)
    for n_try in range(10, 10_000_000, 1):
        e = n_try * rate * mean_followup
        half = 1.96 / math.sqrt(e)
        lo = math.exp(-rate * timepoint * math.exp(half))
        hi = math.exp(-rate * timepoint * math.exp(-half))
        if max(s_true - lo, hi - s_true) <= margin:
            n3 = n_try
            break
    n = max(n1, n2, n3)
    ev = n * rate * mean_followup
    return SampleSize(
        n=n,
        events=ev,
        criteria={"shrinkage": n1, "optimism": n2, "overall_risk": n3},
        details={
            "max_r2_cs": mx,
            "shrinkage_criterion2": s2,
            "events_per_parameter": ev / parameters,
        },
    )


def validation_sample_size(
    *,
    outcome_risk: float,
    c_statistic: float,
    oe_ci_width: float = 0.2,
    c_ci_width: float = 0.1,
    slope_ci_width: float = 0.2,
    lp_sd: float | None = None,
) -> SampleSize:
    """Minimum size of an external validation cohort (event by the horizon).

    Parameters
    ----------
    outcome_risk : float
        Anticipated risk of the event by the horizon (e.g. 0.35 at 24 months).
    c_statistic : float
        Anticipated C-statistic.
    oe_ci_width, c_ci_width, slope_ci_width : float
        Target widths of the 95 % confidence intervals.
    lp_sd : float, optional
        SD of the linear predictor (logit scale); by default derived from the C
        statistic (C = Φ(σ / √2) for a normal linear predictor).

    Returns
    -------
    SampleSize
    """
    f = outcome_risk
    if not 0 < f < 1 or not 0.5 < c_statistic < 1:
        raise ConfigError(
            "outcome_risk in (0, 1) and c_statistic in (0.5, 1) required",
            hint="e.g. outcome_risk=0.35, c_statistic=0.75",
        )
    from scipy import stats

    z = stats.norm.ppf(0.975)
    # O/E: CI exp(±z·SE) around 1; width ≈ exp(z SE) − exp(−z SE)
    se_target = math.asinh(oe_ci_width / 2) / z
    n_oe = math.ceil((1 - f) / (f * se_target**2))

    def c_width(n: int) -> float:
        c = c_statistic
        e = n * f
        ne = n - e
        var = (
            c
            * (1 - c)
            * (1 + (n / 2 - 1) * (1 - c) / (2 - c) + (n / 2 - 1) * c / (1 + c))
            / (e * ne)
        )
        return 2 * z * math.sqrt(var)

    n_c = next(n for n in range(20, 10_000_000, 10) if c_width(n) <= c_ci_width)
    sigma = lp_sd if lp_sd is not None else math.sqrt(2) * stats.norm.ppf(c_statistic)
    rng = np.random.default_rng(0)
    mu0 = math.log(f / (1 - f))
    lp = mu0 + sigma * rng.standard_normal(200_000)
    pr = 1 / (1 + np.exp(-lp))
    # Fisher information per patient for (intercept, slope) of logit(p) = a + b·lp
    w = pr * (1 - pr)
    info = np.array([[w.mean(), (w * lp).mean()], [(w * lp).mean(), (w * lp**2).mean()]])
    var_slope = np.linalg.inv(info)[1, 1]
    n_slope = math.ceil(var_slope * (2 * z / slope_ci_width) ** 2)
    n = max(n_oe, n_c, n_slope)
    return SampleSize(
        n=n,
        events=n * f,
        criteria={"oe": n_oe, "c_statistic": n_c, "calibration_slope": n_slope},
        details={"lp_sd": sigma, "outcome_risk": f},
    )
