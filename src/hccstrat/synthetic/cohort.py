"""Synthetic multi-centre cohort of resected HCC: patients, treatment, outcomes, oracle.

The project's own ground truth (DESIGN §5). :func:`generate_cohort` draws, for
``n_patients`` across ``n_centres`` centres:

- ``clinical``: the canonical clinical table (:mod:`hccstrat.schema` columns only,
  real dates), with marginals and correlations of resected BCLC 0-A HCC (DOMAIN.md);
- ``latent``: the latent traits the MRI and WSI generators render (aggressiveness,
  immune phenotype, lymphocyte densities, MRI enhancement traces...) and the
  per-patient parameters of the outcome model — never a model input;
- ``oracle``: the truth (true risk, true 24-month RFS / RMST per arm, true best arm,
  true probability of aggressive recurrence, propensities);
- ``centres``: site, scanner vendor, stain shift, case mix
  (see :mod:`hccstrat.synthetic._centres` for the columns).

How much signal lives where (calibrated at the defaults, checked by the tests):
the oracle ``true_lp`` reaches Harrell's C ~0.75-0.80 for RFS; a Cox model on
routine clinical variables ~0.62-0.68; most of the rest is latent aggressiveness,
visible in the images with strength ``image_signal`` through traces that scatter
around it (``_latent.TRACE_SD``, ``mri_trace_sd``); satellite nodules and poor
grade in the pathology report, and the immune phenotype and macrotrabecular subtype,
which only the H&E slide shows, add risk MRI cannot see, so POST can see risk PRE
cannot; and some is unobservable: ``unobserved_sd`` (0.25)
on the early log hazard — a modest share, so a model with good image features can
come close to the oracle's C for aggressive recurrence — and four times that on the late
(de novo) log hazard, where host factors dominate.

Treatment effects (:func:`hccstrat.synthetic._outcomes.treatment_log_hr`) vary with
the tumour-driven risk (``benefit_weight``) and the immune phenotype: TACE helps
high-risk patients (HR ~0.70 in MVI+), TACE+TKI more so when immune-inflamed, hardly
more than TACE when immune-desert, and harms low-risk patients (toxicity). The
oracle policy beats the best single regimen by ~0.01 in 2-year RFS: absolute
differences stay small because most patients are either at low risk (little to gain)
or at very high risk (recurrence likely whatever the regimen).

:func:`simulate_outcomes` re-draws treatment and outcomes for the same patients under
any assignment (trial simulation, neoadjuvant HAIC + lenvatinib + PD-1 included).

Examples
--------
>>> from hccstrat.synthetic.cohort import generate_cohort
>>> cohort = generate_cohort(200, 4, seed=1)
>>> cohort.clinical.shape[0], cohort.centres.shape[0]
(200, 4)
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import numpy as np
import pandas as pd

from hccstrat.exceptions import ConfigError
from hccstrat.synthetic._assemble import assignment_arrays, with_outcomes
from hccstrat.synthetic._centres import make_centres, n_western_default
from hccstrat.synthetic._container import SyntheticCohort, latent_dtypes
from hccstrat.synthetic._latent import TRACE_SD, draw_patients
from hccstrat.synthetic._outcomes import (
    ARMS,
    NEOADJUVANT_REGIMEN,
    UNOBSERVED_SD,
    draw_outcomes,
    oracle_table,
    propensities,
    risk_parameters,
)

__all__ = [
    "ARMS",
    "NEOADJUVANT_REGIMEN",
    "SyntheticCohort",
    "generate_cohort",
    "neoadjuvant_policy",
    "simulate_outcomes",
]

logger = logging.getLogger(__name__)

# independent random streams of one seed
_CENTRES, _PATIENTS, _TREATMENT, _OUTCOMES = range(4)


def _check_args(
    n_patients, n_centres, seed, image_signal, accrual_years, followup_years, treatment, n_western,
    unobserved_sd=0.0, mri_trace_sd=0.0,
) -> None:
    def bad(what: str, hint: str) -> ConfigError:
        return ConfigError(f"invalid synthetic-cohort argument: {what}", hint=hint)

    def is_int(x) -> bool:
        return isinstance(x, int | np.integer) and not isinstance(x, bool)

    if not is_int(n_patients) or n_patients < 1:
        raise bad(f"n_patients={n_patients!r}", "give a whole number of patients >= 1 (--n)")
    if not is_int(n_centres) or not 1 <= n_centres <= 99:
        raise bad(f"n_centres={n_centres!r}", "give a whole number from 1 to 99 (--centres)")
    if not is_int(seed) or seed < 0:
        raise bad(f"seed={seed!r}", "give a whole number >= 0 (--seed)")
    for name, value, low in (
        ("image_signal", image_signal, 0.0),
        ("unobserved_sd", unobserved_sd, 0.0),
        ("mri_trace_sd", mri_trace_sd, 0.0),
        ("accrual_years", accrual_years, 1e-9),
        ("followup_years", followup_years, 0.0),
    ):
        if not isinstance(value, int | float) or not math.isfinite(value) or value < low:
            raise bad(f"{name}={value!r}", f"give a finite number {'>= 0' if low == 0 else '> 0'}")
    if treatment not in ("observational", "randomised"):
        raise bad(f"treatment={treatment!r}", "use 'observational' or 'randomised'")
    if n_western is not None and (not is_int(n_western) or not 0 <= n_western <= n_centres):
        raise bad(f"western_centres={n_western!r}", f"give a number from 0 to {n_centres}")


def generate_cohort(
    n_patients: int = 1000,
    n_centres: int = 8,
    *,
    seed: int = 0,
    image_signal: float = 1.0,
    start_date: str | pd.Timestamp = "2018-01-01",
    accrual_years: float = 4.0,
    followup_years: float = 5.0,
    treatment: Literal["observational", "randomised"] = "observational",
    western_centres: int | None = None,
    unobserved_sd: float = UNOBSERVED_SD,
    mri_trace_sd: float = TRACE_SD,
) -> SyntheticCohort:
    """Generate a synthetic multi-centre cohort of resected HCC.

    Parameters
    ----------
    n_patients : int
        Number of patients (>= 1).
    n_centres : int
        Number of centres (1-99); mostly Chinese, with ``western_centres`` Western ones.
    seed : int
        Seed (>= 0); the same seed gives identical frames.
    image_signal : float
        Strength of the link between latent aggressiveness and the image-visible
        traces (MRI rim / margin / peritumoral enhancement, washout, immune
        infiltration, stroma, necrosis, macrotrabecular pattern). 0: images carry no
        signal beyond the clinical table; 1: calibrated default; > 1: stronger.
        Risks depend on it only through the immune phenotype, which is redrawn with
        it: the phenotype's prognostic effect on early recurrence scales with it, and
        the benefit of TACE+TKI and neoadjuvant therapy follows the redrawn phenotype.
    start_date : str or Timestamp
        First day of accrual (surgery dates are spread uniformly over the accrual).
    accrual_years : float
        Length of accrual (> 0).
    followup_years : float
        Follow-up after the end of accrual until the database lock (>= 0); patients
        are censored at the lock and, before it, by loss to follow-up.
    treatment : {"observational", "randomised"}
        Adjuvant arm assigned by a confounded, centre-dependent propensity, or at
        random (1:1:1). No neoadjuvant therapy (see :func:`simulate_outcomes`).
    western_centres : int, optional
        Number of Western centres (older patients, more HCV / alcohol / MASLD, less
        adjuvant TACE). Default: 0 for 1-2 centres, 1 up to 6, else 2.
    unobserved_sd : float
        Sd (log-hazard scale) of the risk component no image or record shows
        in the early (residual-disease) log hazard, ``latent["unobserved_risk"]``
        times this; the late (de novo) log hazard gets four times it. At the default
        (0.25) it is a modest share of the early risk's variance (the tumour-driven
        part, which the images show most of, has sd ~2.6), so a PRE model with good
        image features comes within ~0.02-0.03 of the oracle's C-index for aggressive
        recurrence; raise it to make the truth less observable. Who benefits from
        treatment does not depend on it.
    mri_trace_sd : float
        Noise (logit sd) of the MRI rim, margin and peritumoral traces around their
        aggressiveness-driven mean: how much of the tumour-driven risk MRI shows. At
        the default (0.25) the three traces explain ~95 % of the variance of
        aggressiveness, so what pathology and the slide add to a PRE model is mostly
        what MRI cannot see at all (satellite nodules, grade, macrotrabecular subtype,
        immune phenotype); raising it moves risk information from MRI to pathology,
        widening both the PRE-oracle gap and the POST-PRE gain
        (``benchmarks/ceilings.py`` prints both).

    Returns
    -------
    SyntheticCohort

    Raises
    ------
    ConfigError
        On an invalid argument.
    """
    _check_args(
        n_patients, n_centres, seed, image_signal, accrual_years, followup_years, treatment,
        western_centres, unobserved_sd, mri_trace_sd,
    )
    n_western = n_western_default(n_centres) if western_centres is None else western_centres
    try:
        # strings only as ISO: pd.Timestamp would read 03/01/2020 as 1 March (US order)
        text = isinstance(start_date, str)
        start = pd.Timestamp(
            pd.to_datetime(start_date, format="ISO8601") if text else start_date
        ).normalize()
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"invalid synthetic-cohort argument: start_date={start_date!r}",
            hint="give a date as YYYY-MM-DD",
        ) from err
    accrual_days = accrual_years * 365.25
    lock = start + pd.Timedelta(days=round((accrual_years + followup_years) * 365.25))

    def rng(stream: int) -> np.random.Generator:
        return np.random.default_rng([int(seed), stream])

    centres = make_centres(n_centres, n_western, rng(_CENTRES))
    clinical, latent = draw_patients(
        n_patients, centres, image_signal=float(image_signal),
        mri_trace_sd=float(mri_trace_sd), start=start,
        accrual_days=accrual_days, lock=lock, rng=rng(_PATIENTS),
    )
    risk = risk_parameters(
        clinical, latent, unobserved_sd=float(unobserved_sd), image_signal=float(image_signal)
    )
    latent = pd.concat([latent, risk], axis=1)
    rates = centres.set_index("centre")["loss_rate_per_year"]
    latent["loss_rate_per_year"] = rates.reindex(latent["centre"]).to_numpy(float)
    latent["mri_gap_days"] = (clinical["surgery_date"] - clinical["mri_date"]).dt.days.to_numpy()
    if treatment == "observational":
        prop = propensities(clinical, centres)
    else:
        prop = np.full((n_patients, len(ARMS)), 1.0 / len(ARMS))
    u = rng(_TREATMENT).random(n_patients)
    arm_idx = (u[:, None] > np.cumsum(prop, axis=1)[:, :-1]).sum(axis=1)
    adjuvant = np.array(ARMS, dtype=object)[arm_idx]
    neo = np.zeros(n_patients, bool)
    config = {
        "n_patients": int(n_patients),
        "n_centres": int(n_centres),
        "seed": int(seed),
        "image_signal": float(image_signal),
        "unobserved_sd": float(unobserved_sd),
        "mri_trace_sd": float(mri_trace_sd),
        "start_date": start.strftime("%Y-%m-%d"),
        "accrual_years": float(accrual_years),
        "followup_years": float(followup_years),
        "treatment": treatment,
        "western_centres": int(n_western),
        "outcome_seed": int(seed),
    }
    draws = draw_outcomes(latent, adjuvant, neo, rng(_OUTCOMES))
    clinical = with_outcomes(clinical, latent, adjuvant, neo, draws)
    oracle = oracle_table(latent, adjuvant, neo, prop)
    logger.info("generated a synthetic cohort of %d patients in %d centres", n_patients, n_centres)
    return SyntheticCohort(clinical, latent_dtypes(latent), oracle, centres, config)


def simulate_outcomes(
    cohort_or_latent: SyntheticCohort | pd.DataFrame,
    assignment: Any,
    seed: int = 0,
) -> SyntheticCohort | pd.DataFrame:
    """Re-draw treatment and outcomes for the same patients under another assignment.

    Parameters
    ----------
    cohort_or_latent : SyntheticCohort or DataFrame
        A cohort, or its ``latent`` table.
    assignment : str, sequence, Series or DataFrame
        An adjuvant arm for everyone (``"TACE"``); one arm per patient (in the
        cohort's order, or a Series indexed by ``patient_id``); or a DataFrame with
        ``adjuvant`` and optionally ``neoadjuvant`` (``"HAIC+LEN+PD1"`` / ``"none"``
        or booleans) and ``patient_id`` columns. Neoadjuvant patients get an mRECIST
        response (ORR ~50-70 %) and a benefit mostly in high-risk responders.
    seed : int
        Seed of the outcome draws. Draws are coupled across assignments (common
        random numbers): with the same seed, a patient with the same regimen has the
        same outcome. ``simulate_outcomes(cohort, cohort.clinical[["patient_id",
        "adjuvant"]], seed=cohort.config["outcome_seed"])`` reproduces the cohort's
        clinical table.

    Returns
    -------
    SyntheticCohort or DataFrame
        For a cohort: a new cohort with the treatment and outcome columns of
        ``clinical`` and the assignment-dependent oracle columns (``true_lp``;
        propensities set to NaN) replaced. For a latent table: a DataFrame with
        ``patient_id``, ``adjuvant``, ``neoadjuvant``, ``neoadjuvant_response``,
        ``recurrence``, ``recurrence_months``, ``recurrence_site``,
        ``recurrence_pattern``, ``recurrence_nodules``, ``death``, ``death_months``
        and ``followup_months``.
    """
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"invalid seed {seed!r}", hint="give a whole number >= 0")
    is_cohort = isinstance(cohort_or_latent, SyntheticCohort)
    latent = cohort_or_latent.latent if is_cohort else cohort_or_latent
    if not isinstance(latent, pd.DataFrame) or "lp_early" not in latent.columns:
        raise ConfigError(
            "simulate_outcomes needs a SyntheticCohort or its latent table",
            hint="pass the object returned by generate_cohort (or its .latent)",
        )
    adjuvant, neo = assignment_arrays(latent, assignment)
    draws = draw_outcomes(latent, adjuvant, neo, np.random.default_rng([int(seed), _OUTCOMES]))
    if not is_cohort:
        return pd.DataFrame(
            {
                "patient_id": latent["patient_id"].to_numpy(),
                "adjuvant": adjuvant,
                "neoadjuvant": np.where(neo, NEOADJUVANT_REGIMEN, "none"),
                "neoadjuvant_response": draws["response"],
                "recurrence": draws["recurrence"],
                "recurrence_months": draws["t_recurrence"],
                "recurrence_site": draws["site"],
                "recurrence_pattern": draws["pattern"],
                "recurrence_nodules": draws["nodules"],
                "death": draws["death"],
                "death_months": draws["t_death"],
                "followup_months": draws["t_followup"],
            }
        )
    cohort = cohort_or_latent
    clinical = with_outcomes(cohort.clinical, latent, adjuvant, neo, draws)
    fresh = oracle_table(latent, adjuvant, neo, None)
    oracle = cohort.oracle.copy()
    for col in ["true_lp", *(c for c in fresh.columns if c.startswith("propensity_"))]:
        oracle[col] = fresh[col].to_numpy()
    config = {**cohort.config, "outcome_seed": int(seed), "treatment": "assigned"}
    return SyntheticCohort(clinical, latent.copy(), oracle, cohort.centres.copy(), config)


def neoadjuvant_policy(
    cohort_or_latent: SyntheticCohort | pd.DataFrame,
    treat: Any,
    *,
    adjuvant: Any = "surgery_alone",
) -> pd.DataFrame:
    """Assignment table for :func:`simulate_outcomes` under a neoadjuvant rule.

    Parameters
    ----------
    cohort_or_latent : SyntheticCohort or DataFrame
        The patients (a cohort or its latent table).
    treat : array-like of bool
        Per patient (cohort order): True to give neoadjuvant HAIC + lenvatinib + PD-1
        before resection (e.g. PRE score >= 0.5 in NCT07282184).
    adjuvant : str or array-like of str
        Adjuvant arm(s) after resection (default: surgery alone).

    Returns
    -------
    DataFrame
        ``patient_id``, ``adjuvant``, ``neoadjuvant`` (``"HAIC+LEN+PD1"`` / ``"none"``).
    """
    latent = cohort_or_latent.latent if isinstance(cohort_or_latent, SyntheticCohort) else (
        cohort_or_latent
    )
    flags = np.asarray(treat)
    if flags.shape != (len(latent),) or flags.dtype != bool:
        raise ConfigError(
            f"neoadjuvant_policy needs one true/false per patient ({len(latent)}); "
            f"got shape {flags.shape} of {flags.dtype}",
            hint="pass a boolean array in the cohort's patient order",
        )
    return pd.DataFrame(
        {
            "patient_id": latent["patient_id"].to_numpy(),
            "adjuvant": np.broadcast_to(np.asarray(adjuvant, dtype=object), len(latent)),
            "neoadjuvant": np.where(flags, NEOADJUVANT_REGIMEN, "none"),
        }
    )
