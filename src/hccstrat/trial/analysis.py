"""Trial analysis: Kaplan–Meier, log-rank, stratified Cox, RMST, landmark rates, ORR.

Survival targets are sksurv-style structured arrays (``event``, ``time`` in months;
see :func:`hccstrat.survival.make_surv`). Estimators follow the usual conventions and
agree with lifelines:

- Kaplan–Meier with Greenwood variance and the log(-log) ("exponential Greenwood")
  confidence interval;
- log-rank test with the hypergeometric variance (ties allowed), optionally stratified
  (sums of per-stratum O−E and V);
- Cox proportional hazards (lifelines ``CoxPHFitter``, Efron ties), stratified by
  baseline-hazard strata (centre, risk group);
- RMST up to ``tau`` (area under the KM curve) with the Klein–Moeschberger variance;
- ORR with a Clopper–Pearson interval.

:func:`analyse_trial` runs the whole set for one endpoint and returns a
:class:`TrialResults` that the report functions render.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from hccstrat.exceptions import ConfigError, ModelError

__all__ = [
    "TrialResults",
    "analyse_trial",
    "analysis_sets",
    "cox_hr",
    "kaplan_meier",
    "logrank",
    "objective_response",
    "rmst",
    "rmst_difference",
    "survival_at",
]


def _check_y(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if y.dtype.names is None or not {"event", "time"} <= set(y.dtype.names):
        raise ConfigError("survival target must be a structured array with 'event' and 'time'",
                          hint="build it with hccstrat.survival.make_surv(event, time)")
    return np.asarray(y["event"], bool), np.asarray(y["time"], float)


def kaplan_meier(y: np.ndarray, *, alpha: float = 0.05) -> pd.DataFrame:
    """Kaplan–Meier estimate at every distinct time.

    Returns
    -------
    DataFrame
        ``time, at_risk, events, censored, survival, var_greenwood, ci_lower, ci_upper``
        (first row at time 0).
    """
    event, time = _check_y(y)
    t, inv = np.unique(time, return_inverse=True)
    d = np.bincount(inv, weights=event, minlength=len(t))
    c = np.bincount(inv, minlength=len(t)).astype(float)
    n = np.cumsum(c[::-1])[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.cumprod(1.0 - d / n)
        gw = np.cumsum(np.where(n > d, d / (n * (n - d)), 0.0))
        z = stats.norm.ppf(1 - alpha / 2)
        v = np.log(s)
        lo = np.exp(-np.exp(np.log(-v) - z * np.sqrt(gw) / v))
        hi = np.exp(-np.exp(np.log(-v) + z * np.sqrt(gw) / v))
    lo = np.where(s >= 1.0, 1.0, np.where(s <= 0, 0.0, lo))
    hi = np.where(s >= 1.0, 1.0, np.where(s <= 0, 0.0, hi))
    out = pd.DataFrame({"time": t, "at_risk": n, "events": d, "censored": c - d,
                        "survival": s, "var_greenwood": gw, "ci_lower": lo, "ci_upper": hi})
    if len(t) == 0 or t[0] > 0:
        head = pd.DataFrame({"time": [0.0], "at_risk": [float(len(time))], "events": [0.0],
                             "censored": [0.0], "survival": [1.0], "var_greenwood": [0.0],
                             "ci_lower": [1.0], "ci_upper": [1.0]})
        out = pd.concat([head, out], ignore_index=True)
    return out


def survival_at(y: np.ndarray, t: float, *, alpha: float = 0.05) -> dict[str, float]:
    """KM survival at ``t`` (step function, right-continuous) with its CI."""
    km = kaplan_meier(y, alpha=alpha)
    row = km.iloc[int(np.searchsorted(km["time"].to_numpy(), t, side="right")) - 1]
    return {"time": float(t), "survival": float(row["survival"]),
            "ci_lower": float(row["ci_lower"]), "ci_upper": float(row["ci_upper"]),
            "at_risk": float(km.loc[km["time"] >= t, "at_risk"].max()
                             if (km["time"] >= t).any() else 0.0)}


def _logrank_parts(event, time, g1) -> tuple[float, float, float, float]:
    """(O1, E1, V, n) for group indicator ``g1`` (bool)."""
    t, inv = np.unique(time, return_inverse=True)
    d = np.bincount(inv, weights=event, minlength=len(t))
    d1 = np.bincount(inv, weights=event & g1, minlength=len(t))
    c = np.bincount(inv, minlength=len(t)).astype(float)
    c1 = np.bincount(inv, weights=g1, minlength=len(t))
    n = np.cumsum(c[::-1])[::-1]
    n1 = np.cumsum(c1[::-1])[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.where(n > 0, d * n1 / n, 0.0)
        v = np.where(n > 1, d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1), 0.0)
    return float(d1.sum()), float(e1.sum()), float(v.sum()), float(len(time))


def logrank(y: np.ndarray, group, *, strata=None) -> dict[str, Any]:
    """Two-sample (optionally stratified) log-rank test.

    Parameters
    ----------
    y : structured array
    group : array-like
        Two distinct labels; the first in sorted order is "group 1" for O−E.
    strata : array-like, optional
        Stratum of each patient; O−E and V are summed over strata.

    Returns
    -------
    dict
        ``statistic`` (chi-square, 1 df), ``p_value``, ``z`` (signed, negative when
        group 1 has fewer events than expected), ``observed``, ``expected``,
        ``variance``, ``group1``.
    """
    event, time = _check_y(y)
    g = np.asarray(group)
    labels = np.unique(g[pd.notna(g)])
    if len(labels) != 2:
        raise ConfigError(f"log-rank needs exactly two groups, got {list(labels)}")
    g1 = g == labels[0]
    st = np.zeros(len(g), int) if strata is None else pd.factorize(np.asarray(strata))[0]
    o = e = v = 0.0
    for s in np.unique(st):
        m = st == s
        oo, ee, vv, _ = _logrank_parts(event[m], time[m], g1[m])
        o, e, v = o + oo, e + ee, v + vv
    z = (o - e) / np.sqrt(v) if v > 0 else np.nan
    chi2 = z * z
    return {"statistic": float(chi2), "p_value": float(stats.chi2.sf(chi2, 1)), "z": float(z),
            "observed": o, "expected": e, "variance": v, "group1": str(labels[0])}


def cox_hr(
    y: np.ndarray,
    treated,
    *,
    strata: pd.DataFrame | None = None,
    covariates: pd.DataFrame | None = None,
    alpha: float = 0.05,
) -> dict[str, float]:
    """Hazard ratio of ``treated`` (bool) from a (stratified) Cox model.

    Parameters
    ----------
    y : structured array
    treated : array-like of bool
        1 for the experimental arm.
    strata : DataFrame, optional
        Columns whose combinations define baseline-hazard strata.
    covariates : DataFrame, optional
        Numeric adjustment covariates.

    Returns
    -------
    dict
        ``hr``, ``ci_lower``, ``ci_upper``, ``log_hr``, ``se``, ``p_value``.
    """
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError

    event, time = _check_y(y)
    df = pd.DataFrame({"time": time, "event": event.astype(int),
                       "treated": np.asarray(treated, float)})
    names = []
    if covariates is not None:
        cov = covariates.reset_index(drop=True).astype(float)
        df = pd.concat([df, cov], axis=1)
    if strata is not None:
        st = strata.reset_index(drop=True)
        for i, c in enumerate(st.columns):
            name = f"_stratum{i}"
            df[name] = pd.factorize(st[c].astype(str))[0]
            names.append(name)
    cph = CoxPHFitter(alpha=alpha)
    try:
        cph.fit(df, duration_col="time", event_col="event", strata=names or None)
    except ConvergenceError as err:
        n1, n0 = int(event[df["treated"] == 1].sum()), int(event[df["treated"] == 0].sum())
        raise ModelError(f"the Cox hazard ratio cannot be estimated ({n1} event(s) in the "
                         f"experimental arm, {n0} in the control arm)",
                         hint="an HR needs events in both arms (and in each stratum); wait "
                              "for more follow-up or drop the stratification") from err
    row = cph.summary.loc["treated"]
    lo_col = next(c for c in cph.summary.columns if c.startswith("exp(coef) lower"))
    hi_col = next(c for c in cph.summary.columns if c.startswith("exp(coef) upper"))
    return {"hr": float(row["exp(coef)"]), "ci_lower": float(row[lo_col]),
            "ci_upper": float(row[hi_col]), "log_hr": float(row["coef"]),
            "se": float(row["se(coef)"]), "p_value": float(row["p"])}


def rmst(y: np.ndarray, tau: float) -> dict[str, float]:
    """Restricted mean survival time up to ``tau`` with its Klein–Moeschberger SE."""
    km = kaplan_meier(y)
    t = km["time"].to_numpy()
    s = km["survival"].to_numpy()
    keep = t < tau
    grid = np.append(t[keep], tau)
    area = np.diff(grid) * s[keep]
    mean = float(area.sum())
    # A_j = area under S from t_j to tau, for event times t_j <= tau
    tail = np.cumsum(area[::-1])[::-1]
    d = km["events"].to_numpy()[keep]
    n = km["at_risk"].to_numpy()[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where((d > 0) & (n > d), tail ** 2 * d / (n * (n - d)), 0.0)
    var = float(term.sum())
    return {"tau": float(tau), "rmst": mean, "se": float(np.sqrt(var))}


def rmst_difference(y: np.ndarray, group, tau: float, *, alpha: float = 0.05) -> dict[str, Any]:
    """RMST difference between two groups (second label minus first) with a Wald CI."""
    g = np.asarray(group)
    labels = np.unique(g[pd.notna(g)])
    if len(labels) != 2:
        raise ConfigError(f"RMST difference needs exactly two groups, got {list(labels)}")
    r0, r1 = rmst(y[g == labels[0]], tau), rmst(y[g == labels[1]], tau)
    diff = r1["rmst"] - r0["rmst"]
    se = float(np.hypot(r0["se"], r1["se"]))
    z = stats.norm.ppf(1 - alpha / 2)
    return {"tau": float(tau), "groups": [str(labels[0]), str(labels[1])],
            "rmst": [r0["rmst"], r1["rmst"]], "difference": diff, "se": se,
            "ci_lower": float(diff - z * se), "ci_upper": float(diff + z * se),
            "p_value": float(2 * stats.norm.sf(abs(diff / se))) if se > 0 else np.nan}


def objective_response(responses, *, alpha: float = 0.05) -> dict[str, Any]:
    """ORR = (CR + PR) / number assessed, with a Clopper–Pearson interval.

    ``responses`` hold RECIST 1.1 / mRECIST best responses (CR, PR, SD, PD, NE);
    NE (not evaluable) counts in the denominator (intention to treat), missing values
    do not.
    """
    r = pd.Series(responses).astype("string").str.upper()
    unknown = set(r.dropna()) - {"CR", "PR", "SD", "PD", "NE"}
    if unknown:
        raise ConfigError(f"unknown response categories {sorted(unknown)}",
                          hint="use CR, PR, SD, PD or NE")
    n = int(r.notna().sum())
    k = int(r.isin(["CR", "PR"]).sum())
    if n == 0:
        return {"n": 0, "responders": 0, "orr": np.nan, "ci_lower": np.nan, "ci_upper": np.nan}
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="exact")
    counts = {c: int((r == c).sum()) for c in ("CR", "PR", "SD", "PD", "NE")}
    return {"n": n, "responders": k, "orr": k / n, "ci_lower": float(ci.low),
            "ci_upper": float(ci.high), **counts}


def analysis_sets(df: pd.DataFrame, *, arm_col: str = "arm", received_col: str = "received_arm",
                  deviation_col: str | None = "major_deviation",
                  postop_status_col: str | None = "postoperative_status") -> pd.DataFrame:
    """Flags of the analysis populations.

    - ``itt``: every allocated patient (arm recorded);
    - ``mitt``: ITT without patients excluded by post-operative criteria (non-HCC
      pathology, death or loss within 90 days) when ``postop_status_col`` is given;
    - ``per_protocol``: mITT who received the allocated intervention and had no major
      protocol deviation.
    """
    itt = df[arm_col].notna()
    mitt = itt.copy()
    if postop_status_col and postop_status_col in df.columns:
        mitt &= df[postop_status_col].ne("ineligible")
    pp = mitt.copy()
    if received_col in df.columns:
        pp &= df[received_col].astype("string").eq(df[arm_col].astype("string")).fillna(False)
    if deviation_col and deviation_col in df.columns:
        pp &= ~df[deviation_col].fillna(False).astype(bool)
    return pd.DataFrame({"itt": itt.to_numpy(bool), "mitt": mitt.to_numpy(bool),
                         "per_protocol": pp.to_numpy(bool)}, index=df.index)


@dataclass
class TrialResults:
    """Results of :func:`analyse_trial` for one endpoint and population."""

    endpoint: str
    population: str
    arms: list[str]
    n: dict[str, int]
    events: dict[str, int]
    km: dict[str, pd.DataFrame]
    landmark: dict[str, dict[str, float]]
    logrank: dict[str, Any]
    cox: dict[str, float]
    rmst: dict[str, Any]
    horizon: float
    extra: dict[str, Any] = field(default_factory=dict)

    def numbers(self) -> dict[str, Any]:
        """Key figures as a flat JSON-friendly dict."""
        out: dict[str, Any] = {"endpoint": self.endpoint, "population": self.population}
        for a in self.arms:
            out[f"n_{a}"] = self.n[a]
            out[f"events_{a}"] = self.events[a]
            out[f"{self.endpoint}_{self.horizon:g}m_{a}"] = self.landmark[a]["survival"]
        out.update({"hr": self.cox["hr"], "hr_ci": [self.cox["ci_lower"], self.cox["ci_upper"]],
                    "cox_p": self.cox["p_value"], "logrank_p": self.logrank["p_value"],
                    "rmst_difference": self.rmst["difference"],
                    "rmst_ci": [self.rmst["ci_lower"], self.rmst["ci_upper"]]})
        return out


def analyse_trial(
    y: np.ndarray,
    arm,
    *,
    experimental: str,
    strata: pd.DataFrame | None = None,
    horizon: float = 24.0,
    endpoint: str = "RFS",
    population: str = "ITT",
    alpha: float = 0.05,
) -> TrialResults:
    """Primary analysis of one time-to-event endpoint between two arms.

    Parameters
    ----------
    y : structured array
        Endpoint (months).
    arm : array-like
        Two arm labels.
    experimental : str
        Label of the experimental arm (HR is experimental vs control).
    strata : DataFrame, optional
        Stratification factors (stratified log-rank and Cox).
    horizon : float
        Landmark and RMST horizon in months (24).
    """
    arm = np.asarray(arm).astype(str)
    arms = [str(a) for a in sorted(np.unique(arm))]
    if experimental not in arms or len(arms) != 2:
        raise ConfigError(f"found {len(arms)} arm label(s) {arms}; the analysis needs two, "
                          f"one of them the experimental arm {experimental!r}",
                          hint="check --experimental and the arm column (empty arms?)")
    if not horizon > 0:
        raise ConfigError(f"horizon {horizon} must be a positive number of months")
    km = {a: kaplan_meier(y[arm == a], alpha=alpha) for a in arms}
    st_keys = None
    if strata is not None:
        st_keys = strata.astype(str).agg("|".join, axis=1).to_numpy()
    treated = arm == experimental
    ctrl = next(a for a in arms if a != experimental)
    return TrialResults(
        endpoint=endpoint, population=population, arms=arms,
        n={a: int((arm == a).sum()) for a in arms},
        events={a: int(y["event"][arm == a].sum()) for a in arms},
        km=km,
        landmark={a: survival_at(y[arm == a], horizon, alpha=alpha) for a in arms},
        logrank=logrank(y, np.where(treated, "1_" + experimental, "2_" + ctrl), strata=st_keys),
        cox=cox_hr(y, treated, strata=strata, alpha=alpha),
        rmst=rmst_difference(y, np.where(treated, "b", "a"), horizon, alpha=alpha)
        | {"groups": [ctrl, experimental]},
        horizon=horizon,
    )
