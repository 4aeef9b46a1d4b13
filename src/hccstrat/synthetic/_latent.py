"""Baseline patients of the synthetic cohort: clinical variables and latent traits.

Everything here happens before (or at) surgery: demographics, liver function,
tumour burden, pathology, the radiologist's MRI reads and the latent traits the
image generators render. Outcomes and treatment live in :mod:`._outcomes`.

Figures come from DOMAIN.md ("Patients undergoing resection"); each block names
the targets it was calibrated against (checked in ``tests/synthetic/test_cohort.py``).

Image signal
------------
The latent ``aggressiveness`` drives outcomes directly and through the clinical
variables (MVI, AFP, size...). The *image-visible traces* — ``mri_rim``,
``mri_margin_irregularity``, ``mri_peritumoral``, ``mri_washout``,
``mri_arterial_enhancement``, ``immune_phenotype``, ``lymphocyte_density``,
``margin_lymphocyte_density``, ``stroma_fraction``, ``necrosis_fraction`` and
``macrotrabecular`` — depend on aggressiveness with a strength multiplied by
``image_signal``: 0 makes them independent of it (images then carry no signal
beyond what the clinical table has), 1 is the calibrated default, larger values
make images more informative. Each trace has its own noise, so no single trace
reveals aggressiveness exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from hccstrat.schema import DAYS_PER_MONTH

__all__ = ["IMMUNE_PHENOTYPES", "draw_patients"]

IMMUNE_PHENOTYPES: tuple[str, ...] = ("inflamed", "excluded", "desert")
_AETIOLOGIES = ("HBV", "HCV", "alcohol", "MASLD", "other")
# DOMAIN.md: HBV 70-85 % in China; HCV, alcohol, MASLD more common in the West
_AETIOLOGY_P = {
    False: np.array([0.80, 0.05, 0.05, 0.06, 0.04]),
    True: np.array([0.12, 0.32, 0.24, 0.24, 0.08]),
}
_CIRRHOSIS_P = np.array([0.60, 0.72, 0.75, 0.40, 0.35])  # by aetiology, target 50-70 %


def _beta(rng: np.random.Generator, mean: np.ndarray, conc: float) -> np.ndarray:
    mean = np.clip(mean, 1e-3, 1 - 1e-3)
    return rng.beta(mean * conc, (1.0 - mean) * conc)


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Index drawn per row of ``probs`` (n, k) by inverse CDF."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cdf[:, -1:]
    return (u > cdf).sum(axis=1)


def _demographics(n, west, rng) -> dict[str, np.ndarray]:
    # DOMAIN.md: median age 52-58 (Asian), 62-68 (Western); male 80-88 %
    age = np.floor(np.clip(np.where(west, rng.normal(65, 9, n), rng.normal(55, 10, n)), 20, 86))
    male = rng.random(n) < np.where(west, 0.78, 0.86)
    aet_p = np.where(west[:, None], _AETIOLOGY_P[True], _AETIOLOGY_P[False])
    aet = _categorical(rng, aet_p)
    height = np.where(male, 169.5, 158.0) + np.where(west, 6.0, 0.0) + rng.normal(0, 6, n)
    bmi = np.where(west, 27.0, 23.5) + 3.0 * (aet == 3) + rng.normal(0, 3.2, n)
    bmi = np.clip(bmi, 16.0, 48.0)
    weight = np.round(bmi * (height / 100) ** 2, 1)
    # ECOG mostly 0, some 1 (older patients more often)
    ecog = (rng.random(n) < expit(logit(0.08) + 0.04 * (age - 55))).astype(int)
    return {"age": age, "male": male, "aet": aet, "height": np.round(height, 1),
            "weight": weight, "ecog": ecog}


def _liver(n, age, male, aet, rng) -> dict[str, np.ndarray]:
    cirr = rng.random(n) < expit(logit(_CIRRHOSIS_P[aet]) + 0.02 * (age - 55))
    # liver dysfunction: Child-Pugh A ~95 % (score 5 most common; B7 mostly from mild
    # ascites with a low albumin in cirrhosis), ALBI grade 1/2 ~ 60-70 / 30-40 %
    reserve = rng.normal(0, 1, n) + 0.9 * cirr - 0.5
    albumin = np.clip(41.0 - 3.2 * reserve + rng.normal(0, 2.5, n), 22.0, 55.0)
    bili = np.clip(np.exp(np.log(12.5) + 0.25 * reserve + rng.normal(0, 0.36, n)), 3.0, 110.0)
    inr = np.clip(1.0 + 0.05 * reserve + rng.normal(0, 0.06, n), 0.85, 2.0)
    plt = np.exp(np.log(195) - 0.38 * cirr - 0.10 * reserve + rng.normal(0, 0.33, n))
    plt = np.clip(plt, 25.0, 600.0)
    ascites = np.where(cirr & (rng.random(n) < 0.07 * np.exp(1.0 * reserve)), 1, 0)
    enceph = (rng.random(n) < 0.002 * cirr).astype(int)
    portal_ht = cirr & ((plt < 100) | (rng.random(n) < 0.08))
    creat = np.exp(np.log(np.where(male, 80.0, 62.0)) + 0.005 * (age - 55) + rng.normal(0, 0.18, n))
    return {
        "cirrhosis": cirr, "reserve": reserve, "albumin": np.round(albumin, 1),
        "bilirubin": np.round(bili, 1), "inr": np.round(inr, 2), "platelets": np.round(plt),
        "ascites": ascites, "enceph": enceph, "portal_ht": portal_ht,
        "creatinine": np.round(np.clip(creat, 30, 400), 0),
    }


def _tumour(n, agg, west, aet, cirr, rng) -> dict[str, np.ndarray]:
    # multiple nodules 10-20 %; largest tumour median 4-5 cm; BCLC 0 10-15 %
    multiple = rng.random(n) < expit(logit(0.13) + 0.35 * agg)
    extra = _categorical(rng, np.tile([0.60, 0.28, 0.08, 0.04], (n, 1)))
    number = np.where(multiple, 2 + extra, 1)
    log_size = np.log(4.4) + 0.2 * agg + 0.1 * west + rng.normal(0, 0.68, n)
    size = np.exp(log_size) * np.where(multiple, 0.75, 1.0)
    size = np.round(np.clip(size, 0.8, 18.0), 1)
    lsize = np.log(size / 4.0)
    macro = rng.random(n) < expit(-4.6 + 0.9 * agg + 0.3 * lsize)
    # true microvascular invasion 30-45 % (reads by the pathologist below)
    vi = macro | (rng.random(n) < expit(logit(0.34) + 1.0 * agg + 0.5 * lsize + 0.3 * multiple))
    satellite = rng.random(n) < expit(logit(0.15) + 0.7 * agg + 0.4 * vi + 0.25 * lsize)
    # Edmondson III-IV 30-50 %
    z = 0.6 * agg + rng.normal(0, 0.87, n)
    grade = 1 + (z > -1.74).astype(int) + (z > 0.35).astype(int) + (z > 1.56).astype(int)
    # complete capsule 50-60 %; small tumours often have none
    zc = -0.6 * agg + 0.5 * np.log(size / 2.0) + rng.normal(0, 1, n)
    capsule = np.where(zc > 0.2, 0, np.where(zc > -0.85, 1, 2))  # complete/incomplete/absent
    # histology: HCC with ~2 % ICC / cHCC-CCA
    u = rng.random(n)
    histology = np.where(u < 0.009, 1, np.where(u < 0.021, 2, np.where(u < 0.024, 3, 0)))
    non_hcc = histology > 0
    # AFP: a mixture of non-producing tumours (normal range) and producers with a long
    # tail; median 20-60 ng/mL, > 400 ng/mL in 25-35 % (Chinese cohorts)
    p_producer = expit(0.03 + 0.6 * agg + 0.4 * (aet == 0) - 0.4 * west - 2.0 * non_hcc)
    producer = rng.random(n) < p_producer
    log_afp = np.where(
        producer,
        rng.normal(6.2 + 0.5 * agg + 0.25 * lsize, 1.8, n),
        rng.normal(np.log(5.0) + 0.3 * cirr, 0.7, n),
    )
    afp = np.round(np.clip(np.exp(log_afp), 0.5, 2.0e5), 1)
    # resection margin: R1 ~ 5-8 %; R0 margin width log-normal (median ~8 mm)
    r1 = rng.random(n) < expit(logit(0.055) + 0.5 * lsize + 0.4 * multiple + 0.3 * macro)
    width = np.round(np.clip(np.exp(rng.normal(np.log(8.0), 0.8, n)), 0.5, 60), 1)
    margin = np.where(r1, 0.0, width)
    return {
        "size": size, "number": number, "macro": macro, "vi": vi, "satellite": satellite,
        "grade": grade, "capsule": capsule, "histology": histology, "producer": producer,
        "afp": afp, "r1": r1, "margin_mm": margin,
    }


#: Noise (sd on the logit scale) of each MRI trace around its aggressiveness-driven mean
#: (on top of the traces' dependence on size, vascular invasion and histology). With
#: ``image_signal`` = 1 the rim, margin and peritumoral traces together explain ~95 % of
#: the variance of aggressiveness before any measurement noise; what an image pipeline
#: measures from rendered images adds its own noise (the models benchmark assumes a
#: test-retest ICC of ~0.9), so PRE models see most, not all, of the tumour-driven risk.
TRACE_SD = 0.25
#: Extra arterial-rim / margin / peritumoral signal of true vascular invasion (MVI shows
#: on MRI as non-smooth margin and peritumoral enhancement, DOMAIN.md "MRI").
_VI_TRACE = 0.5


def _images(n, agg, s, tum, rng, trace_sd: float = TRACE_SD) -> dict[str, np.ndarray]:
    """Image-visible latent traces (strength of their link to aggressiveness: ``s``;
    noise of the rim, margin and peritumoral traces around it: ``trace_sd``)."""
    a = s * agg
    v = s * _VI_TRACE * (tum["vi"] - 0.38)
    non_hcc = tum["histology"] > 0
    cap = tum["capsule"]
    sd = trace_sd
    rim = expit(-1.9 + 1.1 * a + 0.5 * v + 2.8 * non_hcc + rng.normal(0, sd, n))
    irreg = expit(
        -0.5 + 1.0 * a + v + 0.3 * np.log(tum["size"] / 4) + rng.normal(0, sd, n)
    )
    peri = expit(-1.2 + 1.0 * a + v + rng.normal(0, sd, n))
    washout = expit(1.6 + 0.4 * a - 3.0 * non_hcc + rng.normal(0, 0.9, n))
    mri_cap = expit(np.array([1.6, 0.0, -2.0])[cap] + rng.normal(0, 0.8, n))
    arterial = 1.18 + 0.06 * a - 0.25 * rim - 0.35 * non_hcc + rng.normal(0, 0.14, n)
    # tumour immune microenvironment: inflamed ~28 %, excluded ~37 %, desert ~35 %
    zi = (-0.7 * a + rng.normal(0, 1, n)) / np.sqrt(1 + 0.49 * s**2)
    phen = np.where(zi > 0.583, 0, np.where(zi > -0.385, 1, 2))
    lymph = _beta(rng, expit(np.array([-0.3, -2.2, -3.2])[phen] + 0.4 * zi), 20.0)
    margin_lymph = _beta(rng, expit(np.array([0.0, 0.2, -2.4])[phen] + 0.3 * zi), 20.0)
    stroma = _beta(rng, expit(-1.8 + 0.5 * (phen == 1) + 1.6 * non_hcc + 0.15 * a), 15.0)
    necrosis = _beta(rng, expit(-3.0 + 0.7 * a + 0.4 * np.log(tum["size"] / 4)), 10.0)
    macrotrab = rng.random(n) < expit(logit(0.10) + 1.2 * a + 0.3 * (tum["grade"] >= 3))
    macrotrab &= ~non_hcc
    # radiologist reads: noisy thresholding of the traces
    def read(x: np.ndarray) -> np.ndarray:
        return (x + rng.normal(0, 0.12, n)) > 0.5

    return {
        "mri_rim": rim, "mri_margin_irregularity": irreg, "mri_peritumoral": peri,
        "mri_washout": washout, "mri_capsule": mri_cap,
        "mri_arterial_enhancement": np.clip(arterial, 0.3, 2.2),
        "immune_phenotype": phen, "lymphocyte_density": lymph,
        "margin_lymphocyte_density": margin_lymph, "stroma_fraction": stroma,
        "necrosis_fraction": necrosis, "macrotrabecular": macrotrab,
        "read_rim": read(rim), "read_margin": read(irreg), "read_washout": read(washout),
        "read_capsule": read(mri_cap), "read_peri": read(peri),
    }


def draw_patients(
    n: int,
    centres: pd.DataFrame,
    *,
    image_signal: float,
    mri_trace_sd: float = TRACE_SD,
    start: pd.Timestamp,
    accrual_days: float,
    lock: pd.Timestamp,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw ``n`` patients' baseline (pre-outcome) clinical table and latent traits.

    Parameters
    ----------
    n : int
        Number of patients.
    centres : DataFrame
        Centre table (:func:`hccstrat.synthetic._centres.make_centres`).
    image_signal : float
        Strength of the link between aggressiveness and the image-visible traces.
    mri_trace_sd : float
        Noise (logit sd) of the MRI rim, margin and peritumoral traces around their
        aggressiveness-driven mean (:data:`TRACE_SD`).
    start : Timestamp
        First possible surgery date.
    accrual_days : float
        Length of the accrual period in days.
    lock : Timestamp
        Database lock (administrative censoring) date.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    clinical : DataFrame
        Canonical columns known before outcomes (no treatment or outcome columns).
    latent : DataFrame
        ``patient_id`` and the latent traits.
    """
    # image traces use their own stream: changing image_signal changes nothing else
    (img_rng,) = rng.spawn(1)
    c_idx = rng.choice(len(centres), size=n, p=centres["weight"].to_numpy(float))
    west = centres["western"].to_numpy(bool)[c_idx]
    agg = rng.normal(centres["casemix_shift"].to_numpy(float)[c_idx], 1.0)
    unobs = rng.normal(0, 1, n)
    dem = _demographics(n, west, rng)
    liv = _liver(n, dem["age"], dem["male"], dem["aet"], rng)
    tum = _tumour(n, agg, west, dem["aet"], liv["cirrhosis"], rng)
    img = _images(n, agg, float(image_signal), tum, img_rng, float(mri_trace_sd))
    mvi_read = np.where(tum["vi"], rng.random(n) < 0.92, rng.random(n) < 0.04) | tum["macro"]
    surg_days = np.floor(rng.random(n) * accrual_days).astype(int)
    surgery = start + pd.to_timedelta(surg_days, unit="D")
    mri_gap = np.clip(np.round(1 + rng.gamma(2.0, 6.5, n)), 1, 45).astype(int)
    width = len(str(n))
    pid = np.char.add("SYN-", np.char.zfill(np.arange(1, n + 1).astype(str), max(width, 5)))
    codes = centres["centre"].to_numpy(str)[c_idx]

    clinical = pd.DataFrame(
        {
            "patient_id": pid,
            "centre": codes,
            "age": dem["age"].astype(float),
            "sex": pd.Categorical(np.where(dem["male"], "M", "F"), categories=["M", "F"]),
            "weight_kg": dem["weight"],
            "height_cm": dem["height"],
            "ecog": pd.array(dem["ecog"], dtype="Int64"),
            "aetiology": pd.Categorical.from_codes(dem["aet"], categories=list(_AETIOLOGIES)),
            "cirrhosis": liv["cirrhosis"],
            "portal_hypertension": liv["portal_ht"],
            "ascites": pd.Categorical.from_codes(
                liv["ascites"], categories=["none", "mild", "moderate_severe"]
            ),
            "encephalopathy": pd.Categorical.from_codes(
                liv["enceph"], categories=["none", "grade_1_2", "grade_3_4"]
            ),
            "bilirubin_umol_l": liv["bilirubin"],
            "albumin_g_l": liv["albumin"],
            "inr": liv["inr"],
            "platelets_10e9_l": liv["platelets"],
            "afp_ng_ml": tum["afp"],
            "creatinine_umol_l": liv["creatinine"],
            "afp_ge_400": tum["afp"] >= 400,
            "tumour_size_cm": tum["size"],
            "tumour_number": pd.array(tum["number"], dtype="Int64"),
            "tumour_size_gt_5cm": tum["size"] > 5,
            "tumour_multiple": tum["number"] >= 2,
            "macrovascular_invasion": tum["macro"],
            "extrahepatic_spread": np.zeros(n, bool),
            "mri_date": surgery - pd.to_timedelta(mri_gap, unit="D"),
            "mri_rim_aphe": img["read_rim"],
            "mri_nonsmooth_margin": img["read_margin"],
            "mri_washout": img["read_washout"],
            "mri_capsule": img["read_capsule"],
            "mri_peritumoral_enh": img["read_peri"],
            "histology": pd.Categorical.from_codes(
                tum["histology"], categories=["HCC", "ICC", "cHCC-CCA", "other"]
            ),
            "mvi": mvi_read,
            "satellite_nodules": tum["satellite"],
            "edmondson_grade": pd.array(tum["grade"], dtype="Int64"),
            "margin_status": pd.Categorical.from_codes(
                tum["r1"].astype(int), categories=["R0", "R1"]
            ),
            "margin_mm": tum["margin_mm"],
            "capsule_pathology": pd.Categorical.from_codes(
                tum["capsule"], categories=["complete", "incomplete", "absent"]
            ),
            "surgery_date": surgery,
        }
    )
    seg_p = np.array([0.02, 0.08, 0.08, 0.12, 0.16, 0.18, 0.18, 0.18])
    latent = pd.DataFrame(
        {
            "patient_id": pid,
            "centre": codes,
            "aggressiveness": agg,
            "unobserved_risk": unobs,
            "immune_phenotype": pd.Categorical.from_codes(
                img["immune_phenotype"], categories=list(IMMUNE_PHENOTYPES)
            ),
            "lymphocyte_density": img["lymphocyte_density"],
            "margin_lymphocyte_density": img["margin_lymphocyte_density"],
            "stroma_fraction": img["stroma_fraction"],
            "necrosis_fraction": img["necrosis_fraction"],
            "vascular_invasion": tum["vi"],
            "macrotrabecular": img["macrotrabecular"],
            "mri_arterial_enhancement": img["mri_arterial_enhancement"],
            "mri_rim": img["mri_rim"],
            "mri_washout": img["mri_washout"],
            "mri_capsule": img["mri_capsule"],
            "mri_margin_irregularity": img["mri_margin_irregularity"],
            "mri_peritumoral": img["mri_peritumoral"],
            "tumour_size_cm": tum["size"],
            "tumour_number": tum["number"].astype(int),
            "tumour_segment": 1 + rng.choice(8, size=n, p=seg_p),
            "liver_volume_ml": np.round(
                rng.normal(1500, 200, n) * np.where(liv["cirrhosis"], 0.88, 1.0)
            ),
            "liver_reserve": liv["reserve"],
            "afp_producer": tum["producer"],
            "potential_followup_months": (lock - surgery).days.to_numpy() / DAYS_PER_MONTH,
        }
    )
    return clinical, latent
