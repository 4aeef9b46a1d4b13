"""Reference policy for the benefit benchmarks: the generator's own hazard model with
every part known except the treatment effects, which are fitted by maximum likelihood.

Used by ``benchmarks/models.py`` and ``benchmarks/ceilings.py`` as an upper reference
for what any learner of the treatment-benefit model can reach at a given training
size: it knows each patient's true early-recurrence, late-recurrence and death
hazards under surgery alone, the shapes of the baseline hazards and the form of the
effects (``hccstrat.synthetic._outcomes.treatment_log_hr``); only the seven effect
sizes are estimated (TACE; TACE+TKI at full and no benefit weight, inflamed and
desert modifiers; death hazard ratios of TACE and TACE+TKI). The model is correctly
specified, so its policy reaches the oracle as the training size grows; what it
misses at a realistic size is sampling error no learner can avoid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from hccstrat.models import ARMS
from hccstrat.synthetic import _outcomes as gen

__all__ = ["TRUE_EFFECTS", "known_hazards_policy"]

#: The generator's effect sizes in the order of the fitted parameters (log scale).
TRUE_EFFECTS = np.log(
    [
        gen._HR_TACE,
        gen._HR_TKI_HIGH,
        gen._HR_TKI_LOW,
        gen._HR_TKI_INFLAMED,
        gen._HR_TKI_DESERT,
        gen._TOX_DEATH_HR["TACE"],
        gen._TOX_DEATH_HR["TACE+TKI"],
    ]
)


def _effects(lat: pd.DataFrame, theta: np.ndarray, arm: np.ndarray):
    """Early-recurrence log HR and death log HR of each patient under ``arm`` codes."""
    w = lat["benefit_weight"].to_numpy(float)
    phen = lat["immune_phenotype"].astype(str).to_numpy()
    tki = (
        w * theta[1]
        + (1 - w) * theta[2]
        + w * (phen == "inflamed") * theta[3]
        + w * (phen == "desert") * theta[4]
    )
    early = np.where(arm == 1, w * theta[0], 0.0) + np.where(arm == 2, tki, 0.0)
    death = np.where(arm == 1, theta[5], 0.0) + np.where(arm == 2, theta[6], 0.0)
    return early, death


def _neg_log_lik(theta, lat, t, event, arm, c_e, c_l, h_d) -> float:
    """Negative log likelihood of RFS (recurrence or death) under the generator's hazards."""
    early, death = _effects(lat, theta, arm)
    ce, hd = c_e * np.exp(early), h_d * np.exp(death)
    k, tau = gen._K_LATE, gen._TAU_EARLY
    hazard = ce * np.exp(-t / tau) / tau + c_l * (k / 12) * (t / 12) ** (k - 1) + hd
    cum = ce * (1 - np.exp(-t / tau)) + c_l * (t / 12) ** k + hd * t
    return float(-(event * np.log(hazard) - cum).sum())


def known_hazards_policy(cohort, X: pd.DataFrame, train, test, y) -> tuple[np.ndarray, np.ndarray]:
    """Best regimen for the ``test`` rows from the effects fitted on the ``train`` rows.

    Parameters
    ----------
    cohort : SyntheticCohort
        The cohort ``X`` comes from (its latent table holds the true hazards).
    X : DataFrame
        Model table with ``patient_id``, ``adjuvant`` and ``neoadjuvant``.
    train, test : ndarray of bool
        Rows to fit on and rows to recommend for.
    y : structured array
        RFS target of ``X`` (months).

    Returns
    -------
    policy : ndarray of str
        Recommended regimen (:data:`~hccstrat.models.ARMS`) per ``test`` row.
    theta : ndarray
        Fitted effects, in the order of :data:`TRUE_EFFECTS`.
    """
    if (X["neoadjuvant"].astype(str) != "none").any():
        raise ValueError("the known-hazards reference covers cohorts without neoadjuvant therapy")
    lat = cohort.latent.set_index("patient_id").loc[X["patient_id"]].reset_index()
    arm = X["adjuvant"].astype(str).map({a: i for i, a in enumerate(ARMS)}).to_numpy()
    c_e, c_l, h_d = gen._hazard_parts(lat)
    t = np.maximum(y["time"].astype(float), 1e-3)
    event = y["event"].astype(float)
    fit = lat[train].reset_index(drop=True)
    res = minimize(
        _neg_log_lik,
        np.zeros(len(TRUE_EFFECTS)),
        args=(fit, t[train], event[train], arm[train], c_e[train], c_l[train], h_d[train]),
        method="L-BFGS-B",
    )
    score = lat[test].reset_index(drop=True)
    s24 = []
    for a in range(len(ARMS)):
        early, death = _effects(score, res.x, np.full(len(score), a))
        s24.append(gen._survival_24(score, early, np.exp(death), aggressive=False)[0])
    return np.asarray(ARMS, dtype=object)[np.column_stack(s24).argmax(1)], res.x
