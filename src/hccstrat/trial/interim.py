"""Group-sequential interim analyses with Lan–DeMets alpha spending.

Boundaries are computed by recursive numerical integration of the Brownian-motion
score process (Armitage–McPherson–Rowe; Jennison & Turnbull 2000, ch. 19) on a grid,
so they are deterministic. O'Brien–Fleming-type spending (Lan & DeMets 1983), per side:
``alpha(t) = 2 - 2 Phi(z_{1-a/2} / sqrt(t))`` with ``a`` the one-sided level; Pocock-type:
``a log(1 + (e - 1) t)``. Two-sided designs are symmetric with ``a = alpha / 2`` per side.

Reference (gsDesign, sfLDOF, two-sided 0.05, equally spaced): K=2 → 2.963, 1.969;
K=3 → 3.710, 2.511, 1.993.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

from hccstrat.exceptions import ConfigError

__all__ = ["group_sequential_bounds", "interim_decision", "spending"]


def spending(t, alpha: float, kind: Literal["obf", "pocock"] = "obf") -> np.ndarray:
    """Cumulative one-sided alpha spent at information fraction(s) ``t``."""
    t = np.clip(np.asarray(t, float), 0.0, 1.0)
    if kind == "obf":
        with np.errstate(divide="ignore"):
            return np.where(t > 0, 2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 2)
                                                          / np.sqrt(np.maximum(t, 1e-300))), 0.0)
    if kind == "pocock":
        return alpha * np.log(1 + (np.e - 1) * t)
    raise ConfigError(f"unknown spending function {kind!r}", hint="use 'obf' or 'pocock'")


def group_sequential_bounds(
    info_fractions: Sequence[float],
    *,
    alpha: float = 0.05,
    sides: Literal[1, 2] = 2,
    kind: Literal["obf", "pocock"] = "obf",
    grid: int = 1201,
) -> pd.DataFrame:
    """Efficacy boundaries (z scale) for analyses at the given information fractions.

    Parameters
    ----------
    info_fractions : sequence of float
        Increasing fractions in (0, 1]; the last is normally 1.
    alpha : float
        Overall type-I error (two-sided when ``sides=2``).
    sides : {1, 2}
    kind : {"obf", "pocock"}
        Spending function.
    grid : int
        Points of the integration grid (accuracy ~1e-4 on z at 1201).

    Returns
    -------
    DataFrame
        ``analysis, info_fraction, z_bound, nominal_p`` (two-sided when sides=2),
        ``alpha_cumulative`` and ``alpha_increment`` (total over both sides).
    """
    t = np.asarray(info_fractions, float)
    if t.ndim != 1 or len(t) == 0 or np.any(np.diff(t) <= 0) or t[0] <= 0 or t[-1] > 1:
        raise ConfigError(f"information fractions {list(t)} must increase within (0, 1]")
    a_side = alpha / 2 if sides == 2 else alpha
    cum = spending(t, a_side, kind)
    inc = np.diff(np.concatenate([[0.0], cum]))
    bounds = []
    b = dens = None  # grid of B(t) values in the continuation region and its density
    t_prev = 0.0
    for k, tk in enumerate(t):
        dt = tk - t_prev
        sd = np.sqrt(dt)

        def cross(c: float, b=b, dens=dens, sd=sd, tk=tk) -> float:
            edge = c * np.sqrt(tk)
            if b is None:
                return stats.norm.sf(edge / sd)  # one side
            p = stats.norm.sf((edge - b) / sd)
            if sides == 2:
                p = p + stats.norm.cdf((-edge - b) / sd)
                p = p / 2  # per side (symmetric)
            return float(np.trapezoid(dens * p, b))

        target = inc[k]
        if target <= 1e-15:
            c = np.inf
        else:
            c = optimize.brentq(lambda c, target=target: cross(c) - target, 0.0, 40.0,
                                xtol=1e-10)
        bounds.append(c)
        edge = c * np.sqrt(tk) if np.isfinite(c) else 8 * np.sqrt(tk)
        lo = -edge if sides == 2 else -8 * np.sqrt(tk)
        new_b = np.linspace(lo, edge, grid)
        if b is None:
            new_d = stats.norm.pdf(new_b, scale=sd)
        else:
            kern = stats.norm.pdf((new_b[:, None] - b[None, :]) / sd) / sd
            new_d = np.trapezoid(kern * dens[None, :], b, axis=1)
        b, dens, t_prev = new_b, new_d, tk
    z = np.asarray(bounds)
    nominal = stats.norm.sf(z) * (2 if sides == 2 else 1)
    return pd.DataFrame({"analysis": np.arange(1, len(t) + 1), "info_fraction": t,
                         "z_bound": z, "nominal_p": nominal,
                         "alpha_cumulative": cum * (2 if sides == 2 else 1),
                         "alpha_increment": inc * (2 if sides == 2 else 1)})


def interim_decision(z: float, analysis: int, bounds: pd.DataFrame) -> dict[str, object]:
    """Decision at analysis ``analysis`` (1-based) given the observed z statistic."""
    row = bounds.loc[bounds["analysis"] == analysis]
    if row.empty:
        raise ConfigError(f"analysis {analysis} is not in the design (1..{len(bounds)})")
    zb = float(row["z_bound"].iloc[0])
    stop = abs(z) >= zb
    final = analysis == int(bounds["analysis"].max())
    return {"analysis": analysis, "z": float(z), "z_bound": zb, "cross": bool(stop),
            "decision": "stop for efficacy" if stop and not final else
            ("reject H0" if stop else ("do not reject H0" if final else "continue"))}
