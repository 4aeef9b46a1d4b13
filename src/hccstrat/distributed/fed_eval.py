"""Federated evaluation: centres compute metrics locally, the server meta-analyses them.

Only aggregate numbers leave a centre (C-index, its bootstrap standard error, the
number of patients and events). The server pools the C-indices with a
DerSimonian–Laird random-effects model on the logit scale
(:func:`hccstrat.evaluation.pool_metric`), which is what a central analysis of the
same per-centre results gives (Debray et al., BMJ 2017).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["LOCAL_METRIC_COLUMNS", "local_metrics", "meta_analyse"]

LOCAL_METRIC_COLUMNS = ["centre", "n", "n_events", "c_index", "c_se"]


def local_metrics(
    y: np.ndarray, risk, *, centre: str = "centre", n_bootstrap: int = 200, seed: int = 0
) -> dict:
    """Metrics one centre computes on its own validation data.

    Parameters
    ----------
    y : structured array
        Survival target (``hccstrat.survival.make_surv``).
    risk : array-like (n,)
        Risk score, higher = earlier event.
    centre : str
    n_bootstrap : int
        Resamples for the standard error of the C-index.
    seed : int

    Returns
    -------
    dict
        ``centre``, ``n``, ``n_events``, ``c_index``, ``c_se`` (aggregates only).
    """
    from hccstrat.evaluation import bootstrap, harrell_c

    risk = np.asarray(risk, float)
    res = bootstrap(
        y,
        risk,
        {"c_index": lambda yy, p, w: harrell_c(yy, p, weights=w)},
        n_resamples=n_bootstrap,
        seed=seed,
    )
    s = res.samples["c_index"]
    s = s[np.isfinite(s)]
    return {
        "centre": str(centre),
        "n": len(risk),
        "n_events": int(np.asarray(y["event"]).sum()),
        "c_index": float(res.estimate["c_index"]),
        "c_se": float(np.std(s, ddof=1)) if s.size > 1 else float("nan"),
    }


def meta_analyse(local: pd.DataFrame | list[dict], *, alpha: float = 0.05):
    """Random-effects pooled C-index from the centres' local results.

    Parameters
    ----------
    local : DataFrame or list of dict
        Rows from :func:`local_metrics`.

    Returns
    -------
    hccstrat.evaluation.meta.MetaResult
    """
    from hccstrat.evaluation import pool_metric

    df = pd.DataFrame(local)
    return pool_metric(df["c_index"], df["c_se"], scale="logit", alpha=alpha)
