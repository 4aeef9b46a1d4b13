"""Clinical utility at a horizon: decision curves with censoring and classification
measures at a risk threshold with time-dependent (cumulative/dynamic) definitions.

Net benefit (Vickers et al., BMC Med Inform Decis Mak 2008, survival extension):
with "high risk" = predicted risk >= p_t,
``NB = P(high)·(1 − S_high(t)) − P(high)·S_high(t)·p_t/(1 − p_t)``,
S_high the Kaplan–Meier survival of the high-risk patients — as in ``dcurves``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from hccstrat.evaluation._core import (
    as_weights,
    censoring_at,
    check_pred,
    check_surv,
    km_at,
    squeeze,
)
from hccstrat.exceptions import ConfigError

__all__ = ["classification_at", "decision_curve", "net_benefit", "treat_all_net_benefit"]


def _thresholds(thresholds) -> np.ndarray:
    """Threshold probabilities as an array; each must lie in [0, 1) (odds p/(1 − p))."""
    th = np.atleast_1d(np.asarray(thresholds, float))
    if not (np.isfinite(th) & (th >= 0) & (th < 1)).all():
        raise ConfigError(
            f"risk thresholds must lie in [0, 1), got {th[~((th >= 0) & (th < 1))].tolist()}",
            hint="net benefit weighs false positives by p_t/(1 − p_t): use e.g. 0.01 to 0.99",
        )
    return th


def net_benefit(y: np.ndarray, risk, horizon: float = 24.0, thresholds=(0.5,), *, weights=None):
    """Net benefit of treating patients with predicted risk >= each threshold.

    Raises
    ------
    ConfigError
        When a threshold lies outside [0, 1) (at 1 the harm weight is infinite).

    Returns
    -------
    ndarray (len(thresholds),) or (B, len(thresholds))
    """
    y = check_surv(y)
    n = y.shape[0]
    p = check_pred(risk, n, where="risk")
    th = _thresholds(thresholds)
    w, two_d = as_weights(weights, n)
    tot = w.sum(axis=1)
    out = np.zeros((w.shape[0], th.size))
    for k, pt in enumerate(th):
        high = p >= pt
        wh = w * high
        ph = wh.sum(axis=1) / tot
        s_high = km_at(y, [horizon], wh)[:, 0]
        out[:, k] = ph * (1 - s_high) - ph * s_high * pt / (1 - pt)
    return out if two_d else out[0]


def treat_all_net_benefit(y: np.ndarray, horizon: float = 24.0, thresholds=(0.5,)) -> np.ndarray:
    """Net benefit of treating everyone (thresholds in [0, 1))."""
    th = _thresholds(thresholds)
    s = km_at(check_surv(y), [horizon], np.ones((1, y.shape[0])))[0, 0]
    return (1 - s) - s * th / (1 - th)


def decision_curve(
    y: np.ndarray, risks: Mapping[str, np.ndarray], horizon: float = 24.0, thresholds=None
) -> pd.DataFrame:
    """Decision curve of several models against treat-all and treat-none.

    Parameters
    ----------
    risks : mapping name -> predicted risk by horizon
        E.g. ``{"PRE": p_model, "BCLC": p_bclc, "ERASL": p_erasl}``; a rule-based
        strategy is given as a 0/1 "risk" (treat / do not treat).
    thresholds : sequence of float, optional
        Default 0.01 to 0.99 by 0.01.

    Returns
    -------
    DataFrame
        Long format: ``threshold, strategy, net_benefit``.
    """
    th = np.arange(0.01, 1.0, 0.01) if thresholds is None else np.asarray(thresholds, float)
    frames = [
        pd.DataFrame(
            {
                "threshold": th,
                "strategy": "treat all",
                "net_benefit": treat_all_net_benefit(y, horizon, th),
            }
        ),
        pd.DataFrame({"threshold": th, "strategy": "treat none", "net_benefit": 0.0}),
    ]
    for name, r in risks.items():
        frames.append(
            pd.DataFrame(
                {"threshold": th, "strategy": name, "net_benefit": net_benefit(y, r, horizon, th)}
            )
        )
    return pd.concat(frames, ignore_index=True)


def classification_at(
    y: np.ndarray,
    risk,
    horizon: float = 24.0,
    threshold: float = 0.5,
    *,
    method: str = "km",
    weights=None,
) -> dict:
    """Sensitivity, specificity, PPV and NPV at a risk threshold, time-dependent.

    Cumulative/dynamic definitions: a *case* has the event by ``horizon``, a *control*
    is event-free at ``horizon``; "positive" = predicted risk >= ``threshold``.

    Parameters
    ----------
    method : {"km", "ipcw"}
        ``"km"``: Kaplan–Meier within positives and negatives (Heagerty et al. 2000
        style); ``"ipcw"``: inverse probability of censoring weights (Uno et al. 2007).

    Returns
    -------
    dict
        ``sensitivity, specificity, ppv, npv, positive_rate`` (arrays for 2-D weights).
    """
    y = check_surv(y)
    n = y.shape[0]
    p = check_pred(risk, n, where="risk")
    w, two_d = as_weights(weights, n)
    pos = p >= threshold
    if method == "km":
        wp, wn = w * pos, w * ~pos
        p_pos = wp.sum(axis=1) / w.sum(axis=1)
        s_pos = km_at(y, [horizon], wp)[:, 0]
        s_neg = km_at(y, [horizon], wn)[:, 0]
        s_all = km_at(y, [horizon], w)[:, 0]
        tp, fp = p_pos * (1 - s_pos), p_pos * s_pos
        fn, tn = (1 - p_pos) * (1 - s_neg), (1 - p_pos) * s_neg
        del s_all
    elif method == "ipcw":
        time = np.asarray(y["time"], float)
        event = np.asarray(y["event"], bool)
        g_i = censoring_at(y, time, w)
        g_h = censoring_at(y, [horizon], w, left=False)
        case = event & (time <= horizon)
        ctrl = time > horizon
        with np.errstate(divide="ignore", invalid="ignore"):
            wc = np.where(case, w / np.where(g_i > 0, g_i, np.inf), 0.0)
            wk = np.where(ctrl, w / np.where(g_h > 0, g_h, np.inf), 0.0)
        tot = w.sum(axis=1)
        tp, fn = (wc * pos).sum(axis=1) / tot, (wc * ~pos).sum(axis=1) / tot
        fp, tn = (wk * pos).sum(axis=1) / tot, (wk * ~pos).sum(axis=1) / tot
    else:
        raise ConfigError(f"unknown method {method!r}", hint="use 'km' or 'ipcw'")
    with np.errstate(divide="ignore", invalid="ignore"):
        res = {
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "ppv": tp / (tp + fp),
            "npv": tn / (tn + fn),
            "positive_rate": tp + fp,
        }
    return {k: squeeze(v, two_d) for k, v in res.items()}
