"""Liver-function scores: Child-Pugh and ALBI.

Child-Pugh (Pugh et al., Br J Surg 1973), SI units as in the project's brief:

=================  ==============  ==================  ==============
item               1 point         2 points            3 points
=================  ==============  ==================  ==============
bilirubin umol/L   < 34            34 to 50            > 50
albumin g/L        > 35            28 to 35            < 28
INR                < 1.7           1.7 to 2.3          > 2.3
ascites            none            mild                moderate-severe
encephalopathy     none            grade 1-2           grade 3-4
=================  ==============  ==================  ==============

Boundary convention: the middle band is closed at both ends, so bilirubin exactly
34 or 50 umol/L scores 2, albumin exactly 35 or 28 g/L scores 2, INR exactly 1.7 or
2.3 scores 2. Numbers are rounded to 1e-6 before comparing (unit-conversion noise
never crosses a cut-off). Class A = 5-6 points, B = 7-9, C = 10-15.

When items are missing the points are missing, but the class is still given when
every possible value of the missing items (1 to 3 points each) leads to the same
class; e.g. three known items summing to 9 with two missing give 11-15 points: class C.

ALBI (Johnson et al., J Clin Oncol 2015;33:550-558):
``0.66 * log10(bilirubin umol/L) - 0.085 * albumin g/L``; grade 1 if <= -2.60,
grade 2 if > -2.60 and <= -1.39, grade 3 if > -1.39. The grade is taken on the score
rounded to 1e-9 (floating-point noise only; the score itself is not rounded).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hccstrat.clinical._inputs import DECIMALS, Inputs, from_codes, kleene, reasons

__all__ = [
    "ALBI_CUTOFFS",
    "CHILD_PUGH_ITEMS",
    "LiverResult",
    "albi_frame",
    "albi_grade",
    "child_pugh_frame",
    "child_pugh_points",
]

#: The five Child-Pugh items (canonical columns), in the order they are reported.
CHILD_PUGH_ITEMS: tuple[str, ...] = (
    "bilirubin_umol_l",
    "albumin_g_l",
    "inr",
    "ascites",
    "encephalopathy",
)

#: ALBI grade cut-offs (Johnson 2015): grade 1 <= -2.60 < grade 2 <= -1.39 < grade 3.
ALBI_CUTOFFS: tuple[float, float] = (-2.60, -1.39)


def _band(x: np.ndarray, low: float, high: float, *, increasing: bool) -> np.ndarray:
    """Points 1/2/3 with the middle band closed at both ends; ``NaN`` stays ``NaN``."""
    xr = np.round(x, DECIMALS)
    with np.errstate(invalid="ignore"):
        if increasing:  # higher is worse (bilirubin, INR)
            pts = np.where(xr < low, 1.0, np.where(xr <= high, 2.0, 3.0))
        else:  # lower is worse (albumin): > high 1, [low, high] 2, < low 3
            pts = np.where(xr > high, 1.0, np.where(xr >= low, 2.0, 3.0))
    return np.where(np.isnan(x), np.nan, pts)


def child_pugh_points(x: Inputs) -> np.ndarray:
    """Points per item, shape ``(n, 5)`` in :data:`CHILD_PUGH_ITEMS` order (``NaN`` = missing)."""
    return np.column_stack(
        [
            _band(x.get("bilirubin_umol_l"), 34.0, 50.0, increasing=True),
            _band(x.get("albumin_g_l"), 28.0, 35.0, increasing=False),
            _band(x.get("inr"), 1.7, 2.3, increasing=True),
            x.get("ascites") + 1.0,
            x.get("encephalopathy") + 1.0,
        ]
    )


def _cp_class_code(points: np.ndarray) -> np.ndarray:
    """0 (A) for 5-6, 1 (B) for 7-9, 2 (C) for 10-15."""
    return np.where(points <= 6, 0, np.where(points <= 9, 1, 2))


class LiverResult:
    """Child-Pugh result with the bounds the staging needs.

    Attributes
    ----------
    frame : DataFrame
        ``child_pugh_points`` (Int64), ``child_pugh_class`` (A/B/C), ``child_pugh_missing``.
    is_class_c : BooleanArray
        Three-valued "Child-Pugh class C" (end-stage liver function for BCLC).
    item_missing : dict of str to ndarray
        Missing mask of each item.
    """

    def __init__(self, frame: pd.DataFrame, is_class_c, item_missing: dict[str, np.ndarray]):
        self.frame = frame
        self.is_class_c = is_class_c
        self.item_missing = item_missing


def child_pugh_frame(x: Inputs) -> LiverResult:
    """Child-Pugh points and class (see module docstring for the conventions)."""
    pts = child_pugh_points(x)
    known = ~np.isnan(pts)
    n_missing = (~known).sum(axis=1)
    total = np.where(known, pts, 0.0).sum(axis=1)
    lo, hi = total + n_missing, total + 3 * n_missing
    cls_lo, cls_hi = _cp_class_code(lo), _cp_class_code(hi)
    cls = np.where(cls_lo == cls_hi, cls_lo, -1)
    points = pd.array(np.where(n_missing == 0, total, np.nan), dtype="Float64").astype("Int64")
    item_missing = {name: ~known[:, i] for i, name in enumerate(CHILD_PUGH_ITEMS)}
    frame = pd.DataFrame(
        {
            "child_pugh_points": pd.Series(points, index=x.index),
            "child_pugh_class": from_codes(cls, ["A", "B", "C"], x.index),
            "child_pugh_missing": reasons(item_missing.items(), x.index),
        },
        index=x.index,
    )
    is_c = kleene(lo >= 10, (lo >= 10) | (hi <= 9))
    return LiverResult(frame, is_c, item_missing)


def albi_grade(score) -> np.ndarray:
    """ALBI grade (1, 2, 3; ``NaN`` if the score is missing) of ALBI score(s)."""
    s = np.asarray(score, dtype=float)
    sr = np.round(s, 9)
    with np.errstate(invalid="ignore"):
        g = np.where(sr <= ALBI_CUTOFFS[0], 1.0, np.where(sr <= ALBI_CUTOFFS[1], 2.0, 3.0))
    return np.where(np.isnan(s), np.nan, g)


def albi_frame(x: Inputs) -> pd.DataFrame:
    """ALBI score, grade and the inputs it lacked."""
    bili = x.get("bilirubin_umol_l")
    alb = x.get("albumin_g_l")
    nonpositive = ~np.isnan(bili) & (bili <= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 0.66 * np.log10(np.where(nonpositive, np.nan, bili)) - 0.085 * alb
    grade = albi_grade(score)
    return pd.DataFrame(
        {
            "albi_score": score,
            "albi_grade": pd.array(grade, dtype="Float64").astype("Int64"),
            "albi_missing": reasons(
                [
                    ("bilirubin_umol_l", np.isnan(bili)),
                    ("bilirubin_umol_l (must be > 0 for the logarithm)", nonpositive),
                    ("albumin_g_l", np.isnan(alb)),
                ],
                x.index,
            ),
        },
        index=x.index,
    )
