"""Validation figures (matplotlib). Each takes results in dict form and ``ax=None``,
draws on it and returns the axes; none calls ``show()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "plot_calibration",
    "plot_decision_curve",
    "plot_drift",
    "plot_forest",
    "plot_km_groups",
    "plot_td_auc",
]


def _ax(ax, size=(5.5, 4.0)):
    if ax is None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=size)
    return ax


def plot_km_groups(km: Mapping[str, Any], *, horizon: float | None = None, ax=None):
    """Kaplan–Meier curves by predicted-risk group (``PerformanceResult.km``)."""
    ax = _ax(ax)
    colours = {"low": "#2b6cb0", "high": "#c53030"}
    for label, d in km.items():
        ax.step(
            d["time"],
            d["survival"],
            where="post",
            color=colours.get(label),
            label=f"{label} risk (n={d['n']})",
        )
    if horizon:
        ax.axvline(horizon, color="grey", ls=":", lw=1)
    ax.set(xlabel="Months", ylabel="Event-free probability", ylim=(0, 1.02))
    ax.legend(frameon=False)
    return ax


def plot_calibration(cal: Mapping[str, Any], *, ax=None, label: str = "model"):
    """Calibration: KM observed vs predicted by group (with CI) and the smoothed curve."""
    ax = _ax(ax, (4.5, 4.5))
    tab = pd.DataFrame(cal.get("table", []))
    if not tab.empty:
        obs = tab["observed"].to_numpy(float)
        yerr = np.vstack(
            [obs - tab["observed_lo"].to_numpy(float), tab["observed_hi"].to_numpy(float) - obs]
        )
        ax.errorbar(
            tab["predicted"].to_numpy(float),
            obs,
            yerr=np.clip(yerr, 0, None),
            fmt="o",
            color="#2c5282",
            ms=4,
            capsize=2,
            label=f"{label}: groups (KM)",
        )
    if "curve" in cal:
        ax.plot(
            cal["curve"]["predicted"],
            cal["curve"]["observed"],
            color="#c05621",
            label=f"smoothed (ICI {cal.get('ici', float('nan')):.3f})",
        )
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    ax.set(xlabel="Predicted risk", ylabel="Observed risk", xlim=(0, 1), ylim=(0, 1))
    ax.legend(frameon=False, fontsize=8)
    return ax


def plot_decision_curve(records: Sequence[Mapping[str, Any]], *, ax=None):
    """Net benefit against threshold probability for every strategy."""
    ax = _ax(ax)
    df = pd.DataFrame(records)
    lo = -0.05
    for name, g in df.groupby("strategy", sort=False):
        style = {
            "treat none": dict(color="black", lw=1),
            "treat all": dict(color="grey", lw=1, ls="--"),
        }
        ax.plot(g["threshold"], g["net_benefit"], label=name, **style.get(name, {}))
    hi = max(df["net_benefit"].max(), 0.01)
    ax.set(xlabel="Threshold probability", ylabel="Net benefit", ylim=(lo, hi * 1.1), xlim=(0, 1))
    ax.legend(frameon=False, fontsize=8)
    return ax


def plot_td_auc(curves: Mapping[str, Mapping[str, Any]], *, ax=None):
    """Time-dependent AUC over follow-up, one line per cohort."""
    ax = _ax(ax)
    for name, d in curves.items():
        if d.get("times"):
            ax.plot(d["times"], d["auc"], marker="o", ms=3, label=name)
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set(xlabel="Months", ylabel="Cumulative/dynamic AUC", ylim=(0.4, 1.0))
    ax.legend(frameon=False, fontsize=8)
    return ax


def plot_forest(
    rows: Sequence[Mapping[str, Any]],
    *,
    estimate: str = "c_index",
    low: str = "c_low",
    high: str = "c_high",
    label: str = "label",
    pooled: Mapping[str, float] | None = None,
    ref: float | None = 0.5,
    ax=None,
):
    """Forest plot: one row per centre or subgroup level, optional pooled diamond."""
    df = pd.DataFrame(rows).dropna(subset=[estimate])
    ax = _ax(ax, (5.5, 0.3 * (len(df) + 2) + 1))
    ys = np.arange(len(df))[::-1] + 1
    est = df[estimate].to_numpy(float)
    xerr = np.vstack([est - df[low].to_numpy(float), df[high].to_numpy(float) - est])
    ax.errorbar(
        est,
        ys,
        xerr=np.clip(np.nan_to_num(xerr), 0, None),
        fmt="s",
        color="#2c5282",
        ms=4,
        capsize=2,
    )
    ax.set_yticks(ys, df[label].astype(str))
    if pooled:
        e, lo_, hi_ = pooled["estimate"], pooled["ci_low"], pooled["ci_high"]
        ax.fill([lo_, e, hi_, e], [0, 0.25, 0, -0.25], color="#c05621")
        ax.set_yticks([*ys, 0], [*df[label].astype(str), "pooled (random effects)"])
    if ref is not None:
        ax.axvline(ref, color="grey", ls=":", lw=1)
    ax.set(xlabel=estimate.replace("_", " "))
    return ax


def plot_drift(rolling: Sequence[Mapping[str, Any]], *, ax=None):
    """Rolling C-index and O/E ratio over calendar time."""
    ax = _ax(ax, (6.5, 3.8))
    df = pd.DataFrame(rolling)
    if df.empty:
        return ax
    x = pd.to_datetime(df["window_start"])
    ax.plot(x, df["c_index"], marker="o", ms=3, color="#2c5282", label="C-index")
    ax.plot(x, df["oe_ratio"], marker="s", ms=3, color="#c05621", label="O/E ratio")
    ax.axhline(1.0, color="grey", ls=":", lw=1)
    ax.set(xlabel="Window start (date of surgery)", ylabel="Value")
    ax.legend(frameon=False, fontsize=8)
    ax.figure.autofmt_xdate()
    return ax
