"""Treatment-benefit evaluation for multi-arm adjuvant regimens.

Predicted benefit of arm ``a`` over the reference arm = S_a(h | x) − S_ref(h | x)
(absolute gain in event-free probability at the horizon). Observed outcome at the
horizon is binary; censoring before the horizon is handled by IPCW (policy value) or
Kaplan–Meier (Qini, calibration), or patients with unknown status are left out
(C-for-benefit, which is defined on binary outcomes).

- :func:`c_for_benefit` — van Klaveren et al., J Clin Epidemiol 2018.
- :func:`qini_curve` — cumulative gain when treating the top fraction by predicted benefit.
- :func:`policy_value` — value (event-free probability at horizon) of a treatment rule,
  by IPW and augmented IPW (doubly robust) with inverse probability of censoring weights.
- :func:`benefit_calibration` — observed vs predicted benefit by group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hccstrat.evaluation._core import censoring_at, check_surv, km_at
from hccstrat.exceptions import ConfigError

__all__ = ["benefit_calibration", "c_for_benefit", "policy_value", "qini_curve"]


def _binary_status(y, horizon):
    time = np.asarray(y["time"], float)
    event = np.asarray(y["event"], bool) & (time <= horizon)
    return event, event | (time >= horizon)


def c_for_benefit(
    y: np.ndarray, treatment, benefit, *, treated, control, horizon: float = 24.0, seed: int = 0
) -> dict:
    """C-for-benefit: concordance of predicted and observed benefit in matched pairs.

    Patients of the two arms with known status at the horizon are sorted by predicted
    benefit and matched by rank (a random surplus of the larger arm is dropped).
    Observed pair benefit = event(control) − event(treated) ∈ {−1, 0, 1}; predicted pair
    benefit = mean of the two predictions. Pairs with equal observed benefit are not
    comparable; tied predictions count one half.

    Returns
    -------
    dict
        ``c_for_benefit``, ``n_pairs``.
    """
    y = check_surv(y)
    a = np.asarray(treatment)
    b = np.asarray(benefit, float)
    ev, known = _binary_status(y, horizon)
    it = np.flatnonzero((a == treated) & known)
    ic = np.flatnonzero((a == control) & known)
    rng = np.random.default_rng(seed)
    k = min(it.size, ic.size)
    if k < 2:
        raise ConfigError(
            f"too few patients in arms {treated!r}/{control!r} with known status",
            hint="check the arm labels and the horizon",
        )
    it = np.sort(rng.choice(it, k, replace=False))
    ic = np.sort(rng.choice(ic, k, replace=False))
    it = it[np.argsort(b[it], kind="stable")]
    ic = ic[np.argsort(b[ic], kind="stable")]
    obs = ev[ic].astype(int) - ev[it].astype(int)
    pred = (b[it] + b[ic]) / 2
    num = den = 0.0
    for hi_lvl, lo_lvl in ((1, 0), (1, -1), (0, -1)):
        ph, pl = np.sort(pred[obs == hi_lvl]), pred[obs == lo_lvl]
        if ph.size == 0 or pl.size == 0:
            continue
        lo = np.searchsorted(ph, pl, "left")
        hi = np.searchsorted(ph, pl, "right")
        num += (ph.size - hi).sum() + 0.5 * (hi - lo).sum()
        den += ph.size * pl.size
    return {"c_for_benefit": num / den if den else float("nan"), "n_pairs": int(k)}


def qini_curve(
    y: np.ndarray,
    treatment,
    benefit,
    *,
    treated,
    control,
    horizon: float = 24.0,
    n_points: int = 20,
) -> pd.DataFrame:
    """Qini (cumulative uplift) curve of one regimen against the reference.

    For the top fraction φ of patients by predicted benefit, uplift(φ) = KM risk of
    the control arm − KM risk of the treated arm among them; the Qini value is
    φ · uplift(φ) and the random-targeting line is φ · uplift(1).

    Returns
    -------
    DataFrame
        ``fraction, uplift, qini, random``; ``attrs["qini_coefficient"]`` is the area
        between the curve and the random line (trapezoid rule).
    """
    y = check_surv(y)
    a = np.asarray(treatment)
    b = np.asarray(benefit, float)
    rank = np.argsort(np.argsort(-b, kind="stable"), kind="stable")
    n = b.size
    fr = np.linspace(1.0 / n_points, 1.0, n_points)
    rows = []
    for f in fr:
        top = rank < max(1, round(f * n))
        wt = (top & (a == treated)).astype(float)[None]
        wc = (top & (a == control)).astype(float)[None]
        if wt.sum() == 0 or wc.sum() == 0:
            rows.append({"fraction": f, "uplift": np.nan})
            continue
        risk_t = 1 - km_at(y, [horizon], wt)[0, 0]
        risk_c = 1 - km_at(y, [horizon], wc)[0, 0]
        rows.append({"fraction": f, "uplift": risk_c - risk_t})
    df = pd.DataFrame(rows)
    overall = df["uplift"].iloc[-1]
    df["qini"] = df["fraction"] * df["uplift"]
    df["random"] = df["fraction"] * overall
    gap = (df["qini"] - df["random"]).fillna(0).to_numpy()
    df.attrs["qini_coefficient"] = float(np.trapezoid(np.r_[0.0, gap], np.r_[0.0, fr]))
    df.attrs["treated"], df.attrs["control"] = str(treated), str(control)
    return df


def policy_value(
    y: np.ndarray,
    treatment,
    policy,
    *,
    horizon: float = 24.0,
    propensity=None,
    survival_by_arm: pd.DataFrame | None = None,
) -> dict:
    """Value of a treatment rule: event-free probability at ``horizon`` if all followed it.

    Parameters
    ----------
    treatment : array-like (n,)
        Arm received.
    policy : array-like (n,)
        Arm the rule recommends.
    propensity : array-like (n,) or DataFrame (n, arms), optional
        P(arm received | x); a DataFrame gives one column per arm. Default: the
        observed arm shares (randomised trial).
    survival_by_arm : DataFrame (n, arms), optional
        Outcome model S_a(horizon | x) per arm; enables the doubly robust estimate.

    Returns
    -------
    dict
        ``ipw`` (normalised IPW), ``dr`` (augmented IPW or NaN), ``se_ipw``, ``se_dr``,
        ``n_followed``.
    """
    y = check_surv(y)
    a = np.asarray(treatment).astype(str)
    pi = np.asarray(policy).astype(str)
    n = a.size
    time = np.asarray(y["time"], float)
    ev, known = _binary_status(y, horizon)
    surv = (~ev).astype(float)
    g = censoring_at(y, np.minimum(time, horizon), np.ones((1, n)))[0]
    delta = np.where(known & (g > 0), 1.0 / np.where(g > 0, g, 1.0), 0.0)
    if propensity is None:
        shares = pd.Series(a).value_counts(normalize=True)
        e = shares.reindex(a).to_numpy(float)
    elif isinstance(propensity, pd.DataFrame):
        cols = propensity.copy()
        cols.columns = cols.columns.astype(str)
        idx = cols.columns.get_indexer(a)
        if (idx < 0).any():
            raise ConfigError(
                f"propensity has no column for arm(s) {sorted(set(a[idx < 0]))}",
                hint=f"give one propensity column per received arm: {sorted(set(a))}",
            )
        e = cols.to_numpy(float)[np.arange(n), idx]
    else:
        e = np.asarray(propensity, float)
    follow = (a == pi).astype(float)
    wt = follow / np.clip(e, 1e-3, None) * delta
    ipw_terms = wt * surv
    ipw = float(ipw_terms.sum() / wt.sum()) if wt.sum() > 0 else float("nan")
    se_ipw = float(np.std(wt * (surv - ipw), ddof=1) / np.sqrt(n) / max(wt.mean(), 1e-12))
    dr = se_dr = float("nan")
    if survival_by_arm is not None:
        sba = survival_by_arm.copy()
        sba.columns = sba.columns.astype(str)
        idx = sba.columns.get_indexer(pi)
        if (idx < 0).any():
            raise ConfigError(
                "policy recommends an arm missing from survival_by_arm",
                hint=f"columns must cover {sorted(set(pi))}",
            )
        mu = sba.to_numpy(float)[np.arange(n), idx]
        psi = mu + wt * (surv - mu)
        dr = float(psi.mean())
        se_dr = float(psi.std(ddof=1) / np.sqrt(n))
    return {
        "ipw": ipw,
        "dr": dr,
        "se_ipw": se_ipw,
        "se_dr": se_dr,
        "n_followed": int(follow.sum()),
        "horizon": float(horizon),
    }


def benefit_calibration(
    y: np.ndarray, treatment, benefit, *, treated, control, horizon: float = 24.0, n_groups: int = 4
) -> pd.DataFrame:
    """Observed vs predicted absolute benefit by quantile group of predicted benefit.

    Observed benefit = KM risk (control) − KM risk (treated) within the group.
    """
    y = check_surv(y)
    a = np.asarray(treatment)
    b = np.asarray(benefit, float)
    ranks = np.argsort(np.argsort(b, kind="stable"), kind="stable")
    grp = ranks * n_groups // b.size
    rows = []
    for gidx in range(n_groups):
        m = grp == gidx
        wt = (m & (a == treated)).astype(float)[None]
        wc = (m & (a == control)).astype(float)[None]
        obs = np.nan
        if wt.sum() > 0 and wc.sum() > 0:
            obs = (1 - km_at(y, [horizon], wc)[0, 0]) - (1 - km_at(y, [horizon], wt)[0, 0])
        rows.append(
            {
                "group": gidx + 1,
                "n_treated": int(wt.sum()),
                "n_control": int(wc.sum()),
                "predicted_benefit": float(b[m].mean()),
                "observed_benefit": float(obs),
            }
        )
    return pd.DataFrame(rows)
