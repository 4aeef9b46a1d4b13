"""Performance by subgroup (sex, age band, aetiology, centre, BCLC stage).

Each subgroup gets the same metrics with bootstrap confidence intervals, in a long
table that the forest plot (:func:`hccstrat.reports.plots.plot_forest`) draws.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hccstrat.evaluation.bootstrap import bootstrap
from hccstrat.evaluation.calibration import calibration_in_the_large
from hccstrat.evaluation.discrimination import harrell_c

__all__ = ["DEFAULT_SUBGROUPS", "age_band", "subgroup_performance"]

log = logging.getLogger(__name__)

#: Columns used when present (``bclc_stage`` comes from :mod:`hccstrat.clinical.scores`).
DEFAULT_SUBGROUPS: tuple[str, ...] = (
    "sex",
    "age_band",
    "aetiology",
    "centre",
    "bclc_stage",
    "bclc_recorded",
)


def age_band(age, edges: Sequence[float] = (0, 50, 65, 120)) -> pd.Series:
    """Age bands such as ``"<50"``, ``"50-64"``, ``">=65"``."""
    age = pd.Series(age, dtype=float)
    labels = []
    for lo, hi in itertools.pairwise(edges):
        labels.append(
            f"<{hi:g}"
            if lo == edges[0]
            else (f">={lo:g}" if hi == edges[-1] else f"{lo:g}-{hi - 1:g}")
        )
    return pd.cut(age, list(edges), right=False, labels=labels).astype("string")


def subgroup_performance(
    y: np.ndarray,
    risk,
    frame: pd.DataFrame,
    by: Sequence[str] | None = None,
    *,
    horizon: float = 24.0,
    n_resamples: int = 200,
    seed: int = 0,
    min_n: int = 30,
    min_events: int = 5,
) -> pd.DataFrame:
    """C-index and O/E ratio with bootstrap CIs in every level of each subgroup column.

    Parameters
    ----------
    frame : DataFrame
        Patient table aligned with ``y`` (same order). An ``age`` column yields
        ``age_band`` automatically.
    by : sequence of str, optional
        Columns to split by; default :data:`DEFAULT_SUBGROUPS` that exist.
    min_n, min_events : int
        Smaller levels are listed with NaN metrics.

    Returns
    -------
    DataFrame
        ``variable, level, n, events, c_index, c_low, c_high, oe_ratio, oe_low, oe_high``.
    """
    frame = frame.reset_index(drop=True).copy()
    if "age_band" not in frame and "age" in frame:
        frame["age_band"] = age_band(frame["age"])
    cols = [c for c in (by or DEFAULT_SUBGROUPS) if c in frame.columns]
    p = np.asarray(risk, float)
    metrics = {
        "c_index": lambda yy, pp, w: harrell_c(yy, pp, weights=w),
        "oe_ratio": lambda yy, pp, w: calibration_in_the_large(yy, pp, horizon, weights=w)[
            "oe_ratio"
        ],
    }
    rows = []
    for col in cols:
        for lvl in sorted(frame[col].dropna().astype(str).unique()):
            m = (frame[col].astype(str) == lvl).to_numpy() & frame[col].notna().to_numpy()
            ev = int((y["event"][m] & (y["time"][m] <= horizon)).sum())
            row = {"variable": col, "level": lvl, "n": int(m.sum()), "events": ev}
            if m.sum() >= min_n and ev >= min_events:
                try:
                    r = bootstrap(y[m], p[m], metrics, n_resamples=n_resamples, seed=seed)
                except Exception as err:  # one subgroup failing must not stop the table
                    log.warning("subgroup %s=%s failed: %s", col, lvl, err)
                else:
                    for k in ("c_index", "oe_ratio"):
                        lo, hi = r.ci(k)
                        short = "c" if k == "c_index" else "oe"
                        row.update({k: r.estimate[k], f"{short}_low": lo, f"{short}_high": hi})
            rows.append(row)
    cols_out = [
        "variable",
        "level",
        "n",
        "events",
        "c_index",
        "c_low",
        "c_high",
        "oe_ratio",
        "oe_low",
        "oe_high",
    ]
    return pd.DataFrame(rows).reindex(columns=cols_out)
