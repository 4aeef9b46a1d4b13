"""Outcome model of the synthetic cohort: hazards, treatment effects, draws and oracle.

Recurrence has two competing sources (times in months from surgery):

- **early** (residual micro-metastatic disease), cumulative hazard
  ``H_e(t) = exp(a_e + lp_early) * (1 - exp(-t / tau))``: it saturates after 2-3 years
  (a patient may never have an early recurrence); driven by tumour factors
  (roughly in DOMAIN.md's order: MVI / macrovascular invasion, AFP, size, number,
  satellite nodules, grade, R1 margin, no capsule, ALBI, male sex; satellite nodules
  and Edmondson III-IV each HR ~1.65 as in resection series, which MRI does not show
  beyond aggressiveness), the latent ``aggressiveness``, the immune phenotype
  (inflamed HR 0.64, desert 1.28) and the macrotrabecular-massive subtype (HR 1.65) at
  ``image_signal`` 1 (only the H&E slide shows these two) and the ``unobserved_risk``.
  Adjuvant and neoadjuvant therapy multiply this hazard (heterogeneous hazard ratios,
  see :func:`treatment_log_hr`).
- **late** (de novo, multicentric), Weibull ``H_l(t) = exp(a_l + lp_late) * (t/12)^k``,
  driven by cirrhosis, viral aetiology, age, male sex, ALBI and a little aggressiveness.

Death before recurrence has a constant hazard ``exp(a_d + lp_death)`` (raised a little
by TKI / neoadjuvant toxicity); after recurrence death follows a Weibull gap whose
median is much shorter after an aggressive recurrence. Censoring: administrative
(database lock) and loss to follow-up (exponential, centre rate).

Aggressive recurrence (DESIGN §4): each recurrence is aggressive with a probability
that rises with aggressiveness and true vascular invasion, mostly for early
recurrences; aggressive ones are multinodular (>= 4 nodules), infiltrative,
macrovascular or extrahepatic (10-15 % of all recurrences).

All draws are made for every patient whatever the assignment, so outcomes under two
assignments drawn with the same seed are coupled (common random numbers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit, logit

__all__ = [
    "ARMS",
    "NEOADJUVANT_REGIMEN",
    "UNOBSERVED_SD",
    "draw_outcomes",
    "oracle_table",
    "propensities",
    "risk_parameters",
    "treatment_log_hr",
]

#: Adjuvant regimens (schema column ``adjuvant``), from least to most intensive.
ARMS: tuple[str, ...] = ("surgery_alone", "TACE", "TACE+TKI")
#: Neoadjuvant regimen of NCT07282184 (schema column ``neoadjuvant``).
NEOADJUVANT_REGIMEN = "HAIC+LEN+PD1"

# --- calibrated constants (see tests/synthetic/test_cohort.py for the targets) ------
_TAU_EARLY = 7.0  # months: time scale of early recurrence
_A_EARLY = -3.25  # intercept of the early component
_A_LATE = -3.15  # intercept of the late component (per year at t = 12)
_K_LATE = 1.3  # Weibull shape of the late component
_A_DEATH = np.log(0.007 / 12)  # ~0.7 %/year death without recurrence at the reference
_SCALE = 0.5  # multiplier of the clinical part of the early linear predictor
_BETA_AGG = 2.2  # direct effect of latent aggressiveness (beyond clinical factors)
#: Default sd of the unobservable component of the early log hazard (``unobserved_sd``):
#: signal no image or record shows (host factors, HBV activity after surgery...).
UNOBSERVED_SD = 0.25
_LATE_UNOBS = 4.0  # late (de novo, field-effect) recurrence: mostly host factors nobody sees
_POST_REC_MEDIAN = (48.0, 16.0)  # months from recurrence to death: non-aggressive / aggressive
_K_POST = 1.2
_BENEFIT_CENTRE, _BENEFIT_WIDTH = 0.0, 0.8  # tumour risk where half the effect applies
# early-recurrence hazard ratios vs surgery alone at full (w = 1) / no (w = 0) benefit
# weight (DOMAIN.md "Treatment effects"): TACE ~0.70 in MVI+ / high risk, none in low
# risk; TACE+TKI larger benefit in high risk, larger still when immune-inflamed and
# smaller when immune-desert, and harm in low risk (toxicity, dose interruptions,
# liver injury in cirrhotic livers)
_HR_TACE = 0.62
_HR_TKI_HIGH, _HR_TKI_LOW = 0.40, 1.5
_HR_TKI_INFLAMED, _HR_TKI_DESERT = 0.50, 1.6
#: Prognostic (not only predictive) effect of the immune phenotype on early recurrence,
#: whatever the treatment: a lymphocyte-rich (inflamed) tumour recurs less, an immune
#: desert more (intratumoral CD8+ density / Immunoscore studies; DOMAIN.md: H&E-WSI
#: models predict recurrence). Only the slide shows it, so POST can see risk PRE cannot.
_IMMUNE_LOG_HR = {"inflamed": np.log(0.64), "excluded": 0.0, "desert": np.log(1.28)}
#: Prognostic effect of the macrotrabecular-massive subtype on early recurrence beyond
#: aggressiveness (HR ~1.65; MTM-HCC series: early recurrence HR ~1.5-2.2), scaled by
#: ``image_signal`` like the immune phenotype: only the slide shows it.
_MTM_LOG_HR = 0.5
_TOX_DEATH_HR = {"TACE": 1.05, "TACE+TKI": 2.0, NEOADJUVANT_REGIMEN: 1.3}
# shares of aggressive recurrence types: multinodular, extrahepatic, infiltrative, macrovascular
_AGGRESSIVE_TYPES = np.array([0.40, 0.36, 0.10, 0.14])


def _albi(clinical: pd.DataFrame) -> np.ndarray:
    bili = clinical["bilirubin_umol_l"].to_numpy(float)
    alb = clinical["albumin_g_l"].to_numpy(float)
    return np.log10(bili) * 0.66 - 0.085 * alb


def risk_parameters(
    clinical: pd.DataFrame,
    latent: pd.DataFrame,
    *,
    unobserved_sd: float = UNOBSERVED_SD,
    image_signal: float = 1.0,
) -> pd.DataFrame:
    """Per-patient parameters of the outcome model (stored in the latent table).

    Parameters
    ----------
    clinical, latent : DataFrame
        Baseline tables, aligned row by row.
    unobserved_sd : float
        Sd of the unobservable component (``unobserved_risk``, N(0, 1)) in the early
        log hazard; the late log hazard gets four times that.
    image_signal : float
        The cohort's ``image_signal``: it also scales the prognostic effects of the
        immune phenotype (:data:`_IMMUNE_LOG_HR`) and of the macrotrabecular-massive
        subtype (:data:`_MTM_LOG_HR`), so that at 0 the slides carry no risk signal
        beyond the clinical table.

    Returns
    -------
    DataFrame
        ``lp_early``, ``lp_late``, ``lp_death``, ``lp_post_recurrence_death``,
        ``benefit_weight`` (0-1: how much of the high-risk treatment effect applies),
        ``p_aggressive_early``, ``p_aggressive_late`` and ``p_neoadjuvant_response``.
    """
    c = clinical
    agg = latent["aggressiveness"].to_numpy(float)
    unobs = latent["unobserved_risk"].to_numpy(float)
    vi = latent["vascular_invasion"].to_numpy(bool)
    macro = c["macrovascular_invasion"].to_numpy(bool)
    afp = np.clip(np.log(c["afp_ng_ml"].to_numpy(float) / 20.0), -2.0, 7.0)
    lsize = np.log(c["tumour_size_cm"].to_numpy(float) / 4.0)
    multiple = c["tumour_number"].to_numpy(float) >= 2
    sat = c["satellite_nodules"].to_numpy(bool)
    poor = c["edmondson_grade"].to_numpy(float) >= 3
    r1 = (c["margin_status"] == "R1").to_numpy(bool)
    no_cap = (c["capsule_pathology"] != "complete").to_numpy(bool)
    albi = _albi(c) + 2.7
    male = (c["sex"] == "M").to_numpy(bool)
    cirr = c["cirrhosis"].to_numpy(bool)
    viral = c["aetiology"].isin(["HBV", "HCV"]).to_numpy(bool)
    non_hcc = (c["histology"] != "HCC").to_numpy(bool)
    mtm = latent["macrotrabecular"].to_numpy(bool)  # macrotrabecular-massive subtype
    age = c["age"].to_numpy(float) - 55.0
    clin = (
        0.9 * vi + 1.0 * macro + 0.12 * afp + 0.35 * lsize + 0.3 * multiple + 1.0 * sat
        + 1.0 * poor + 0.35 * r1 + 0.2 * no_cap + 0.3 * albi + 0.12 * male + 0.1 * cirr
        + 0.5 * non_hcc
    )
    tumour_risk = _SCALE * clin + _BETA_AGG * agg
    phen = latent["immune_phenotype"].astype(str).to_numpy()
    immune = image_signal * np.select(
        [phen == k for k in _IMMUNE_LOG_HR], list(_IMMUNE_LOG_HR.values()), 0.0
    )
    # the macrotrabecular-massive subtype, seen on the slide only (like the phenotype)
    histology = image_signal * _MTM_LOG_HR * mtm
    lp_early = tumour_risk + immune + histology + unobserved_sd * unobs
    lp_late = (
        0.45 * cirr + 0.25 * viral + 0.015 * age + 0.15 * male + 0.3 * albi + 0.3 * multiple
        + 0.4 * agg + _LATE_UNOBS * unobserved_sd * unobs
    )
    lp_death = 0.05 * age + 0.5 * albi + 0.3 * cirr
    lp_post = 0.3 * albi + 0.02 * age
    # benefit weight: share of the "high-risk" treatment effect, rising with the
    # tumour-driven (residual micro-metastatic) early-recurrence risk under surgery alone
    # (~0.7 on average in MVI+ patients); host factors (the unobservable part) do not
    # modify the effect, so who benefits is visible in the records and images
    weight = expit((tumour_risk - _BENEFIT_CENTRE) / _BENEFIT_WIDTH)
    p_resp = expit(logit(0.58) + 0.9 * (phen == "inflamed") - 0.5 * (phen == "desert"))
    return pd.DataFrame(
        {
            "lp_early": lp_early,
            "lp_late": lp_late,
            "lp_death": lp_death,
            "lp_post_recurrence_death": lp_post,
            "benefit_weight": weight,
            "p_aggressive_early": expit(-0.3 + 0.9 * agg + 1.0 * vi + 0.4 * macro),
            "p_aggressive_late": expit(-1.8 + 0.3 * agg),
            "p_neoadjuvant_response": p_resp,
        },
        index=latent.index,
    )


def treatment_log_hr(
    latent: pd.DataFrame, arm: str, *, responder: bool | None = None
) -> np.ndarray:
    """True log hazard ratio of the early-recurrence hazard for one regimen.

    Parameters
    ----------
    latent : DataFrame
        Latent table with ``benefit_weight``, ``immune_phenotype`` and
        ``p_neoadjuvant_response``.
    arm : str
        An adjuvant arm (:data:`ARMS`) or :data:`NEOADJUVANT_REGIMEN`.
    responder : bool, optional
        Neoadjuvant only: the log HR of responders (True), non-responders (False),
        or the log of the response-averaged HR (None).

    Notes
    -----
    DOMAIN.md: adjuvant TACE HR ~0.70 in MVI+ / high-risk patients, little effect in
    low risk; TACE+TKI a larger benefit in high risk, more when immune-inflamed (HR
    ~0.2 at full weight) and hardly more than TACE alone when immune-desert, and harm
    in low risk (toxicity, stopped treatment; HR 1.5, plus a doubled death hazard);
    neoadjuvant HAIC + lenvatinib + PD-1 HR ~0.6 in high risk, mostly in mRECIST
    responders (ORR 50-70 %). Who benefits depends on the tumour-driven risk
    (``benefit_weight``) and the immune phenotype, never on the unobservable part.
    """
    w = latent["benefit_weight"].to_numpy(float)
    inflamed = (latent["immune_phenotype"].astype(str) == "inflamed").to_numpy(bool)
    if arm == "surgery_alone":
        return np.zeros(len(latent))
    if arm == "TACE":
        return w * np.log(_HR_TACE)
    if arm == "TACE+TKI":
        desert = (latent["immune_phenotype"].astype(str) == "desert").to_numpy(bool)
        return (
            w * np.log(_HR_TKI_HIGH)
            + (1 - w) * np.log(_HR_TKI_LOW)
            + w * inflamed * np.log(_HR_TKI_INFLAMED)
            + w * desert * np.log(_HR_TKI_DESERT)
        )
    if arm == NEOADJUVANT_REGIMEN:
        resp = w * np.log(0.42) + (1 - w) * np.log(0.85)
        non = w * np.log(0.88) + (1 - w) * np.log(1.05)
        if responder is True:
            return resp
        if responder is False:
            return non
        p = latent["p_neoadjuvant_response"].to_numpy(float)
        return np.log(p * np.exp(resp) + (1 - p) * np.exp(non))
    raise ValueError(f"unknown regimen {arm!r}")


def propensities(clinical: pd.DataFrame, centres: pd.DataFrame) -> np.ndarray:
    """Observational probabilities (n, 3) of each adjuvant arm, in :data:`ARMS` order.

    Confounded by risk: clinicians see the reported MVI, size, number, satellites,
    margin, AFP and liver function; centres differ in practice (Western centres give
    little adjuvant TACE). About 55 / 30 / 15 % overall in Chinese centres.
    """
    c = clinical
    idx = pd.Index(centres["centre"]).get_indexer(c["centre"])
    tace_pref = centres["tace_preference"].to_numpy(float)[idx]
    tki_pref = centres["tki_preference"].to_numpy(float)[idx]
    mvi = c["mvi"].to_numpy(bool)
    big = c["tumour_size_cm"].to_numpy(float) > 5
    mult = c["tumour_number"].to_numpy(float) >= 2
    sat = c["satellite_nodules"].to_numpy(bool)
    r1 = (c["margin_status"] == "R1").to_numpy(bool)
    afp = c["afp_ng_ml"].to_numpy(float) >= 400
    cap = (c["capsule_pathology"] == "complete").to_numpy(bool)
    age = c["age"].to_numpy(float) - 55
    albi2 = _albi(c) > -2.60
    risk = 0.35 * big + 0.3 * mult + 0.35 * sat + 0.4 * r1 - 0.3 * cap
    s_tace = -1.2 + tace_pref + 0.9 * mvi + risk + 0.3 * afp - 0.02 * age
    s_tki = -2.0 + tki_pref + 1.2 * mvi + risk + 0.5 * afp - 0.03 * age - 0.4 * albi2
    logits = np.column_stack([np.zeros(len(c)), s_tace, s_tki])
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _hazard_parts(latent: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c_e = np.exp(_A_EARLY + latent["lp_early"].to_numpy(float))
    c_l = np.exp(_A_LATE + latent["lp_late"].to_numpy(float))
    h_d = np.exp(_A_DEATH + latent["lp_death"].to_numpy(float))
    return c_e, c_l, h_d


def _tox(adjuvant: np.ndarray, neo: np.ndarray) -> np.ndarray:
    tox = np.ones(len(adjuvant))
    for arm in ("TACE", "TACE+TKI"):
        tox *= np.where(adjuvant == arm, _TOX_DEATH_HR[arm], 1.0)
    return tox * np.where(neo, _TOX_DEATH_HR[NEOADJUVANT_REGIMEN], 1.0)


def draw_outcomes(
    latent: pd.DataFrame, adjuvant: np.ndarray, neo: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Draw outcomes (months from surgery) under an assignment.

    Parameters
    ----------
    latent : DataFrame
        Latent table including the :func:`risk_parameters` columns,
        ``potential_followup_months`` and ``loss_rate_per_year``.
    adjuvant : ndarray of str
        Adjuvant arm of each patient (:data:`ARMS`).
    neo : ndarray of bool
        Whether each patient receives neoadjuvant HAIC + lenvatinib + PD-1.
    rng : numpy.random.Generator
        Source of randomness; the same number of draws is made whatever the assignment.

    Returns
    -------
    dict of ndarray
        ``t_recurrence``, ``recurrence``, ``t_death``, ``death``, ``t_followup``
        (months), ``site``, ``pattern`` (str or None), ``nodules`` (float, NaN when
        not applicable), ``responder`` (bool), ``response`` (mRECIST, None without
        neoadjuvant therapy), ``adjuvant_delay_days``, ``neoadjuvant_lead_days``.
    """
    n = len(latent)
    u = rng.random((14, n))
    ex = -np.log1p(-u[:5])  # five Exp(1) draws
    c_e, c_l, h_d = _hazard_parts(latent)
    p_resp = latent["p_neoadjuvant_response"].to_numpy(float)
    responder = neo & (u[5] < p_resp)
    log_hr = np.zeros(n)
    for arm in ARMS[1:]:
        log_hr += np.where(adjuvant == arm, treatment_log_hr(latent, arm), 0.0)
    log_hr += np.where(responder, treatment_log_hr(latent, NEOADJUVANT_REGIMEN, responder=True), 0)
    non = neo & ~responder
    log_hr += np.where(non, treatment_log_hr(latent, NEOADJUVANT_REGIMEN, responder=False), 0)
    c_eff = c_e * np.exp(log_hr)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_early = np.where(ex[0] < c_eff, -_TAU_EARLY * np.log1p(-ex[0] / c_eff), np.inf)
    t_late = 12.0 * (ex[1] / c_l) ** (1.0 / _K_LATE)
    t_pre_death = ex[2] / (h_d * _tox(adjuvant, neo))
    t_rec = np.minimum(t_early, t_late)
    recurred = t_rec < t_pre_death
    early = t_early < t_late
    p_agg = np.where(early, latent["p_aggressive_early"], latent["p_aggressive_late"])
    aggressive = recurred & (u[6] < p_agg)
    # aggressive type: 0 multinodular, 1 extrahepatic, 2 infiltrative, 3 macrovascular
    kind = (u[7][:, None] > np.cumsum(_AGGRESSIVE_TYPES)[None, :-1]).sum(axis=1)
    both = u[8] < 0.4
    # pattern code: 0 solitary, 1 oligonodular, 2 multinodular, 3 infiltrative, 4 macrovascular
    benign = np.where(u[9] < 0.65, 0, 1)
    extra_pattern = np.where(u[9] < 0.4, 0, np.where(u[9] < 0.7, 1, 2))
    agg_pattern = np.choose(kind, [np.full(n, 2), extra_pattern, np.full(n, 3), np.full(n, 4)])
    pattern = np.where(aggressive, agg_pattern, benign)
    site = np.where(aggressive & (kind == 1), np.where(both, 2, 1), 0)  # intra / extra / both
    nod = np.choose(
        np.minimum(pattern, 4),
        [
            np.ones(n),
            2 + (u[10] < 0.35),
            np.minimum(4 + np.floor(np.log1p(-u[10]) / np.log(0.7)), 30),
            np.full(n, np.nan),
            1 + np.floor(u[10] * 3),
        ],
    )
    # death after recurrence: Weibull gap, shorter after an aggressive recurrence
    med = np.where(aggressive, _POST_REC_MEDIAN[1], _POST_REC_MEDIAN[0])
    med = med * np.exp(-latent["lp_post_recurrence_death"].to_numpy(float))
    scale = med / np.log(2.0) ** (1.0 / _K_POST)
    gap = scale * ex[3] ** (1.0 / _K_POST)
    t_death = np.where(recurred, t_rec + gap, t_pre_death)
    rate = latent["loss_rate_per_year"].to_numpy(float) / 12.0
    t_loss = ex[4] / rate
    t_cens = np.minimum(t_loss, latent["potential_followup_months"].to_numpy(float))
    rec_obs = recurred & (t_rec <= t_cens)
    death_obs = t_death <= t_cens
    response = np.where(
        responder,
        np.where(u[11] < 0.12, "CR", "PR"),
        np.where(u[11] < 0.78, "SD", "PD"),
    ).astype(object)
    response[~neo] = None
    return {
        "t_recurrence": np.where(rec_obs, t_rec, np.nan),
        "recurrence": rec_obs,
        "t_death": np.where(death_obs, t_death, np.nan),
        "death": death_obs,
        "t_followup": np.minimum(t_death, t_cens),
        "site": np.where(rec_obs, np.array(["intrahepatic", "extrahepatic", "both"])[site], None),
        "pattern": np.where(
            rec_obs,
            np.array(["solitary", "oligonodular", "multinodular", "infiltrative", "macrovascular"])[
                pattern
            ],
            None,
        ),
        "nodules": np.where(rec_obs, nod, np.nan),
        "responder": responder,
        "response": response,
        "adjuvant_delay_days": 28 + np.floor(u[12] * 22),
        "neoadjuvant_lead_days": 70 + np.floor(u[13] * 43),
    }


_GRID = np.linspace(0.0, 24.0, 25)  # monthly steps


def _survival_24(
    latent, log_hr, tox, *, aggressive: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """RFS at 24 months, RMST to 24 months, P(aggressive by 24) and log H_RFS(24).

    Integrals assume a constant hazard within each monthly step (exact for any
    steepness of the survival curve, so probabilities stay within [0, 1]).
    """
    c_e, c_l, h_d = _hazard_parts(latent)
    c_e = c_e * np.exp(log_hr)
    d_early = -np.diff(np.exp(-_GRID / _TAU_EARLY))  # increments of 1 - exp(-t/tau)
    d_late = np.diff((_GRID / 12.0) ** _K_LATE)
    step = np.diff(_GRID)
    d_h = np.multiply.outer(c_e, d_early)
    d_h += np.multiply.outer(c_l, d_late)
    d_h += np.multiply.outer(h_d * tox, step)
    cum = np.cumsum(d_h, axis=1)
    s_end = np.exp(-cum)  # S at the end of each step
    s_start = np.empty_like(s_end)
    s_start[:, 0] = 1.0
    s_start[:, 1:] = s_end[:, :-1]
    # d_h > 0 everywhere: the death hazard is positive
    rmst = (s_start * (-np.expm1(-d_h) / d_h)) @ step
    p_agg = None
    if aggressive:
        pe = latent["p_aggressive_early"].to_numpy(float)
        pl = latent["p_aggressive_late"].to_numpy(float)
        agg_h = np.multiply.outer(c_e * pe, d_early) + np.multiply.outer(c_l * pl, d_late)
        p_agg = ((s_start - s_end) * (agg_h / d_h)).sum(axis=1)
    return s_end[:, -1].copy(), rmst, p_agg, np.log(cum[:, -1])


def oracle_table(
    latent: pd.DataFrame, adjuvant: np.ndarray, neo: np.ndarray, propensity: np.ndarray | None
) -> pd.DataFrame:
    """The truth for each patient (kept apart from model inputs).

    Columns: ``patient_id``, ``true_lp`` (log cumulative RFS hazard at 24 months under
    the regimen received: a true log-hazard risk score), ``true_lp_early`` /
    ``true_lp_late`` (component log relative hazards under surgery alone),
    ``true_rfs24_<arm>`` and ``true_rmst24_<arm>`` for each adjuvant arm (no
    neoadjuvant therapy) and for ``neoadjuvant`` (+ surgery alone), ``true_best_arm``
    (adjuvant arm with the highest true 24-month RFS), ``true_hr_<arm>`` (hazard ratio
    of early recurrence vs surgery alone), ``true_p_aggressive24`` (probability of an
    aggressive recurrence within 24 months under surgery alone, deaths and other
    recurrences competing), ``true_p_aggressive24_neoadjuvant``,
    ``true_p_neoadjuvant_response`` and ``propensity_<arm>`` (NaN when the
    assignment mechanism is not known).
    """
    n = len(latent)
    out: dict[str, object] = {"patient_id": latent["patient_id"].to_numpy()}
    log_hr = np.zeros(n)
    for arm in ARMS[1:]:
        log_hr += np.where(adjuvant == arm, treatment_log_hr(latent, arm), 0.0)
    log_hr += np.where(neo, treatment_log_hr(latent, NEOADJUVANT_REGIMEN), 0.0)
    out["true_lp"] = _survival_24(latent, log_hr, _tox(adjuvant, neo), aggressive=False)[3]
    out["true_lp_early"] = latent["lp_early"].to_numpy(float)
    out["true_lp_late"] = latent["lp_late"].to_numpy(float)
    none = np.zeros(n, bool)
    rfs = []
    for arm in ARMS:
        s24, rmst, pagg, _ = _survival_24(
            latent, treatment_log_hr(latent, arm), _tox(np.full(n, arm), none),
            aggressive=arm == "surgery_alone",
        )
        out[f"true_rfs24_{arm}"] = s24
        out[f"true_rmst24_{arm}"] = rmst
        out[f"true_hr_{arm}"] = np.exp(treatment_log_hr(latent, arm))
        rfs.append(s24)
        if arm == "surgery_alone":
            out["true_p_aggressive24"] = pagg
    out["true_best_arm"] = np.array(ARMS, dtype=object)[np.argmax(np.column_stack(rfs), axis=1)]
    # neoadjuvant (then surgery alone): average over mRECIST response
    p = latent["p_neoadjuvant_response"].to_numpy(float)
    tox = _tox(np.full(n, "surgery_alone"), ~none)
    parts = [
        _survival_24(latent, treatment_log_hr(latent, NEOADJUVANT_REGIMEN, responder=r), tox)
        for r in (True, False)
    ]
    out["true_rfs24_neoadjuvant"] = p * parts[0][0] + (1 - p) * parts[1][0]
    out["true_rmst24_neoadjuvant"] = p * parts[0][1] + (1 - p) * parts[1][1]
    out["true_hr_neoadjuvant"] = np.exp(treatment_log_hr(latent, NEOADJUVANT_REGIMEN))
    out["true_p_aggressive24_neoadjuvant"] = p * parts[0][2] + (1 - p) * parts[1][2]
    out["true_p_neoadjuvant_response"] = p
    for j, arm in enumerate(ARMS):
        out[f"propensity_{arm}"] = np.full(n, np.nan) if propensity is None else propensity[:, j]
    return pd.DataFrame(out)
