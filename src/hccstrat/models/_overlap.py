"""Propensity overlap diagnostics of the treatment-benefit model.

Effect estimates for patients whom some regimen was almost never given to rest on
extrapolation, and extreme inverse-probability weights make them noisy. Before any
estimate is trusted, :func:`propensity_overlap` summarises, per regimen, the
propensity distribution, the share of patients below the clipping threshold and the
IPTW effective sample size, and says in plain language what is wrong.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hccstrat._columns import spec

__all__ = ["OverlapWarning", "propensity_overlap"]

#: Adjuvant regimens of the canonical table (``adjuvant``), reference first.
_ARMS: tuple[str, ...] = tuple(spec("adjuvant").categories)


class OverlapWarning(UserWarning):
    """Treated groups overlap poorly: effect estimates rely on extrapolation."""


def propensity_overlap(
    e: np.ndarray, arm: np.ndarray, arms=_ARMS, *, clip: float = 0.05, min_ess_fraction: float = 0.2
) -> tuple[pd.DataFrame, list[str]]:
    """Propensity overlap diagnostics.

    Parameters
    ----------
    e : ndarray [n, A]
        Propensity of each arm.
    arm : ndarray [n] of int
        Arm received.
    clip : float
        Propensities below this count as outside the common support.
    min_ess_fraction : float
        Warn when an arm's IPTW effective sample size is below this share of its size.

    Returns
    -------
    table : DataFrame
        One row per arm: patients, propensity quantiles, share below ``clip``,
        effective sample size and largest weight of IPTW.
    warnings : list of str
        Plain-language problems (empty when the overlap is acceptable).
    """
    rows, problems = [], []
    for a, name in enumerate(arms):
        ea = e[:, a]
        got = arm == a
        w = 1.0 / np.clip(ea[got], 1e-6, 1.0)
        ess = float(w.sum() ** 2 / (w**2).sum()) if got.any() else 0.0
        below = float((ea < clip).mean())
        rows.append(
            {
                "arm": name,
                "n": int(got.sum()),
                "e_min": float(ea.min()),
                "e_p05": float(np.quantile(ea, 0.05)),
                "e_median": float(np.median(ea)),
                "e_max": float(ea.max()),
                "share_below_clip": below,
                "iptw_ess": ess,
                "iptw_max_weight": float(w.max()) if got.any() else float("nan"),
            }
        )
        if got.sum() < 30:
            problems.append(f"arm {name}: only {int(got.sum())} patients")
        if below > 0.05:
            problems.append(
                f"arm {name}: {below:.0%} of patients have propensity < {clip:g} "
                "(little overlap: estimates for them extrapolate)"
            )
        if got.any() and ess < min_ess_fraction * got.sum():
            problems.append(
                f"arm {name}: IPTW effective sample size {ess:.0f} of {int(got.sum())} "
                "(extreme weights)"
            )
    return pd.DataFrame(rows), problems
