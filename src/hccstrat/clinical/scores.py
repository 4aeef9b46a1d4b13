"""Clinical scores of HCC, vectorised over a canonical patient table.

:func:`compute_scores` returns, for every row of a table with the columns of
:mod:`hccstrat.schema`:

========================  ====================================================
score                     columns
========================  ====================================================
Child-Pugh                ``child_pugh_points``, ``child_pugh_class`` (A/B/C)
ALBI                      ``albi_score``, ``albi_grade`` (1/2/3)
BCLC 2022                 ``bclc_stage`` (0/A/B/C/D), ``bclc_source``
AJCC 8th TNM              ``tnm_t``, ``tnm_n``, ``tnm_m``, ``tnm_stage``
ERASL-pre / ERASL-post    ``erasl_*_score``, ``erasl_*_group``, ``erasl_*_risk_24m``
========================  ====================================================

plus one ``<score>_missing`` column per score listing the inputs it lacked
(``"albumin_g_l, inr"``; missing when nothing was lacking). A score is missing
rather than wrong: staging is decided with three-valued logic and given only when
the recorded inputs make it certain. Conventions (boundaries, the use of the
categorical versions ``afp_ge_400``/``tumour_size_gt_5cm``/``tumour_multiple``, the
TNM column mapping) are documented in :mod:`hccstrat.clinical._liver`,
:mod:`hccstrat.clinical._staging` and :mod:`hccstrat.clinical._erasl`.

.. warning::
   The default ERASL coefficients are provisional (not verified against Chan et al.
   2018); see :mod:`hccstrat.clinical._erasl` and pass verified models to
   :func:`compute_scores` when available.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"bilirubin_umol_l": [17.0], "albumin_g_l": [40.0], "inr": [1.1],
...                    "ascites": ["none"], "encephalopathy": ["none"]})
>>> s = compute_scores(df)
>>> int(s.loc[0, "child_pugh_points"]), s.loc[0, "child_pugh_class"], int(s.loc[0, "albi_grade"])
(5, 'A', 2)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hccstrat.clinical._erasl import (
    ERASL_POST,
    ERASL_PRE,
    ERASL_TERMS,
    EraslModel,
    erasl_frame,
    load_erasl_model,
)
from hccstrat.clinical._inputs import SCORE_INPUTS, Inputs
from hccstrat.clinical._liver import (
    ALBI_CUTOFFS,
    CHILD_PUGH_ITEMS,
    albi_frame,
    albi_grade,
    child_pugh_frame,
)
from hccstrat.clinical._staging import BCLC_STAGES, TNM_STAGES, TNM_T, bclc_frame, tnm_frame

__all__ = [
    "ALBI_CUTOFFS",
    "BCLC_STAGES",
    "CHILD_PUGH_ITEMS",
    "ERASL_POST",
    "ERASL_PRE",
    "ERASL_TERMS",
    "SCORES",
    "SCORE_INPUTS",
    "TNM_STAGES",
    "TNM_T",
    "EraslModel",
    "albi",
    "albi_grade",
    "bclc",
    "child_pugh",
    "compute_scores",
    "erasl",
    "load_erasl_model",
    "scores_lacked",
    "tnm",
]

#: Score name -> (column whose absence means "score missing", its ``_missing`` column).
SCORES: dict[str, tuple[str, str]] = {
    "child_pugh": ("child_pugh_class", "child_pugh_missing"),
    "albi": ("albi_grade", "albi_missing"),
    "bclc": ("bclc_stage", "bclc_missing"),
    "tnm": ("tnm_stage", "tnm_missing"),
    "erasl_pre": ("erasl_pre_score", "erasl_pre_missing"),
    "erasl_post": ("erasl_post_score", "erasl_post_missing"),
}


def child_pugh(df: pd.DataFrame) -> pd.DataFrame:
    """Child-Pugh points, class and missing inputs.

    Parameters
    ----------
    df : DataFrame
        Canonical table (``bilirubin_umol_l``, ``albumin_g_l``, ``inr``, ``ascites``,
        ``encephalopathy``); absent columns count as missing.

    Returns
    -------
    DataFrame
        ``child_pugh_points`` (Int64, 5-15), ``child_pugh_class`` (ordered A < B < C;
        given with missing items when they cannot change it), ``child_pugh_missing``.
    """
    return child_pugh_frame(Inputs(df)).frame


def albi(df: pd.DataFrame) -> pd.DataFrame:
    """ALBI score and grade (``albi_score``, ``albi_grade``, ``albi_missing``)."""
    return albi_frame(Inputs(df))


def bclc(df: pd.DataFrame) -> pd.DataFrame:
    """BCLC 2022 stage (``bclc_stage``, ``bclc_source``, ``bclc_missing``)."""
    x = Inputs(df)
    return bclc_frame(x, child_pugh_frame(x))


def tnm(df: pd.DataFrame) -> pd.DataFrame:
    """AJCC 8th edition TNM (``tnm_t``, ``tnm_n``, ``tnm_m``, ``tnm_stage``, ``tnm_missing``)."""
    return tnm_frame(Inputs(df))


def erasl(
    df: pd.DataFrame, model: EraslModel = ERASL_PRE, *, prefix: str | None = None
) -> pd.DataFrame:
    """One ERASL model: ``<prefix>_score``, ``_group``, ``_risk_24m``, ``_missing``.

    ``prefix`` defaults to ``erasl_pre`` or ``erasl_post`` from the model's use of ``mvi``.
    """
    x = Inputs(df)
    grade = albi_frame(x)["albi_grade"].to_numpy(dtype=float, na_value=np.nan)
    prefix = prefix or ("erasl_post" if "mvi" in model.coefficients else "erasl_pre")
    return erasl_frame(x, grade, model, prefix)


def compute_scores(
    df: pd.DataFrame,
    *,
    erasl_pre: EraslModel = ERASL_PRE,
    erasl_post: EraslModel = ERASL_POST,
) -> pd.DataFrame:
    """Every clinical score for every patient (see the module docstring).

    Parameters
    ----------
    df : DataFrame
        Canonical clinical table, one row per patient (typed as returned by
        :func:`hccstrat.schema.validate`, or raw text that coerces cleanly).
    erasl_pre, erasl_post : EraslModel
        ERASL coefficient sets; the defaults are provisional (module warning).

    Returns
    -------
    DataFrame
        Same index as ``df``; ``patient_id`` first when present, then the score columns
        and ``erasl_coefficients`` (provenance of the ERASL numbers).

    Raises
    ------
    DataValidationError
        If a score input cannot be parsed or is outside its possible range.
    """
    x = Inputs(df)
    liver = child_pugh_frame(x)
    albi_df = albi_frame(x)
    grade = albi_df["albi_grade"].to_numpy(dtype=float, na_value=np.nan)
    parts = [
        liver.frame,
        albi_df,
        bclc_frame(x, liver),
        tnm_frame(x),
        erasl_frame(x, grade, erasl_pre, "erasl_pre"),
        erasl_frame(x, grade, erasl_post, "erasl_post"),
    ]
    if "patient_id" in df.columns:
        parts.insert(0, df[["patient_id"]])
    out = pd.concat(parts, axis=1)
    out["erasl_coefficients"] = pd.Categorical.from_codes(
        np.zeros(len(out), dtype=np.int64), [f"{erasl_pre.label}; {erasl_post.label}"]
    )
    out.attrs["erasl_verified"] = bool(erasl_pre.verified and erasl_post.verified)
    return out


def scores_lacked(df: pd.DataFrame) -> pd.DataFrame:
    """How many patients lack each score, and which inputs are responsible.

    Parameters
    ----------
    df : DataFrame
        Output of :func:`compute_scores`, or a canonical table (scored first).

    Returns
    -------
    DataFrame
        One row per score: ``score``, ``n_patients``, ``n_missing`` (score not given),
        ``n_recorded`` (BCLC taken from ``bclc_recorded``; 0 for other scores),
        ``inputs`` (``"mvi (40), tumour_size_cm (12)"``: for the patients without the
        score, how many lacked each input, most frequent first; for BCLC also the
        patients whose stage was taken from the record).
    """
    if not all(c in df.columns for pair in SCORES.values() for c in pair):
        df = compute_scores(df)
    rows = []
    for name, (value_col, missing_col) in SCORES.items():
        no_value = df[value_col].isna().to_numpy()
        n_recorded = 0
        blocked = no_value
        if name == "bclc":
            recorded = df["bclc_source"].astype("string").eq("recorded").fillna(False).to_numpy()
            n_recorded = int(recorded.sum())
            blocked = no_value | recorded
        why = df.loc[blocked, missing_col].dropna().astype(str)
        counts = why.str.split(", ").explode().value_counts() if len(why) else pd.Series(dtype=int)
        rows.append(
            {
                "score": name,
                "n_patients": len(df),
                "n_missing": int(no_value.sum()),
                "n_recorded": n_recorded,
                "inputs": ", ".join(f"{k} ({v})" for k, v in counts.items()),
            }
        )
    return pd.DataFrame(rows)
