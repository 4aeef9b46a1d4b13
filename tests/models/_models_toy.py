"""Small synthetic cohort and image-feature proxies for the model tests and benchmark.

Not library code. ``toy_cohort`` mimics the interface of
``hccstrat.synthetic.cohort.generate_cohort`` (``.clinical``, ``.latent``, ``.oracle``)
so the model tests do not depend on the generator; ``make_image_feature_proxies``
simulates what the MRI and WSI pipelines would measure (latent traits + noise) until
those pipelines produce real feature tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ARMS = ("surgery_alone", "TACE", "TACE+TKI")
_K, _LAMBDA, _DEATH = 0.9, 60.0, 0.002  # Weibull shape, scale (months), death hazard / month


@dataclass
class ToyCohort:
    clinical: pd.DataFrame
    latent: pd.DataFrame
    oracle: pd.DataFrame


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _arm_effects(z: np.ndarray, inflamed: np.ndarray) -> np.ndarray:
    """Log hazard ratio of each arm vs surgery alone, [n, 3] (heterogeneous)."""
    tace = -0.7 * _sig(2.0 * z) + 0.15
    tki = -1.1 * _sig(2.0 * (z - 0.3)) * np.where(inflamed, 1.0, 0.45) + 0.2
    return np.stack([np.zeros_like(z), tace, tki], axis=1)


def _surv(t, lp):
    return np.exp(-((t / _LAMBDA) ** _K) * np.exp(lp) - _DEATH * t)


def toy_cohort(n: int = 300, n_centres: int = 3, *, seed: int = 0) -> ToyCohort:
    """Seeded multi-centre toy cohort with confounded adjuvant arms and an oracle."""
    rng = np.random.default_rng(seed)
    pid = np.array([f"P{i:05d}" for i in range(n)])
    centre = rng.integers(0, n_centres, n)
    z = rng.normal(size=n) + 0.15 * (centre - (n_centres - 1) / 2)
    p_inf = _sig(-0.5 * z - 0.3)
    u = rng.random(n)
    pheno = np.where(
        u < p_inf, "inflamed", np.where(u < p_inf + 0.6 * (1 - p_inf), "excluded", "desert")
    )
    inflamed = pheno == "inflamed"
    lymph = np.exp(
        rng.normal(np.where(inflamed, 6.5, np.where(pheno == "excluded", 5.5, 4.5)), 0.4)
    )
    latent = pd.DataFrame(
        {
            "patient_id": pid,
            "aggressiveness": z,
            "immune_phenotype": pheno,
            "lymphocyte_density": lymph,
            "margin_lymphocyte_density": lymph * np.where(pheno == "excluded", 2.0, 1.0),
            "stroma_fraction": np.clip(0.2 + 0.05 * rng.normal(size=n), 0, 1),
            "necrosis_fraction": np.clip(0.05 + 0.04 * z + 0.03 * rng.normal(size=n), 0, 1),
            "vascular_invasion": rng.random(n) < _sig(-0.6 + 1.3 * z),
            "macrotrabecular": rng.random(n) < _sig(-2.0 + 1.0 * z),
            "mri_arterial_enhancement": 1.0 + 0.2 * rng.normal(size=n),
            "mri_rim": _sig(1.6 * z - 0.8 + 0.5 * rng.normal(size=n)),
            "mri_washout": _sig(0.5 + 0.3 * rng.normal(size=n)),
            "mri_capsule": _sig(-0.6 * z + 0.5 * rng.normal(size=n)),
            "mri_margin_irregularity": _sig(1.3 * z - 0.3 + 0.5 * rng.normal(size=n)),
            "mri_peritumoral": _sig(1.1 * z - 1.0 + 0.6 * rng.normal(size=n)),
        }
    )
    afp = np.exp(3.2 + 1.3 * z + 1.4 * rng.normal(size=n)).round(1)
    size = np.exp(np.log(4.0) + 0.3 * z + 0.4 * rng.normal(size=n)).round(1)
    number = 1 + rng.poisson(0.15 + 0.2 * (z > 1), n)
    mvi = latent["vascular_invasion"].to_numpy()
    albumin = rng.normal(40, 4, n)
    bili = np.exp(rng.normal(np.log(14), 0.35, n))
    cirrh = rng.random(n) < 0.6
    surgery = pd.Timestamp("2016-01-01") + pd.to_timedelta(rng.integers(0, 4 * 365, n), unit="D")
    clinical = pd.DataFrame(
        {
            "patient_id": pid,
            "centre": np.array([f"C{c + 1}" for c in centre]),
            "age": rng.normal(55, 10, n).clip(20, 85).round(),
            "sex": np.where(rng.random(n) < 0.84, "M", "F"),
            "ecog": (rng.random(n) < 0.2).astype(int),
            "aetiology": rng.choice(
                ["HBV", "HCV", "alcohol", "MASLD"], n, p=[0.78, 0.08, 0.07, 0.07]
            ),
            "cirrhosis": cirrh,
            "ascites": "none",
            "encephalopathy": "none",
            "bilirubin_umol_l": bili.round(1),
            "albumin_g_l": albumin.round(1),
            "inr": rng.normal(1.05, 0.08, n).round(2),
            "platelets_10e9_l": np.exp(rng.normal(np.log(160), 0.35, n)).round(),
            "afp_ng_ml": afp.round(1),
            "afp_ge_400": afp >= 400,
            "tumour_size_cm": size.round(1),
            "tumour_size_gt_5cm": size > 5,
            "tumour_number": number,
            "tumour_multiple": number >= 2,
            "macrovascular_invasion": False,
            "extrahepatic_spread": False,
            "mri_rim_aphe": latent["mri_rim"].to_numpy() > 0.5,
            "mri_nonsmooth_margin": latent["mri_margin_irregularity"].to_numpy() > 0.6,
            "mri_washout": latent["mri_washout"].to_numpy() > 0.5,
            "mri_capsule": latent["mri_capsule"].to_numpy() > 0.5,
            "mri_peritumoral_enh": latent["mri_peritumoral"].to_numpy() > 0.5,
            "histology": "HCC",
            "mvi": mvi,
            "satellite_nodules": rng.random(n) < _sig(-1.6 + 0.8 * z),
            "edmondson_grade": np.clip(
                np.round(2.3 + 0.6 * z + 0.5 * rng.normal(size=n)), 1, 4
            ).astype(int),
            "margin_status": np.where(rng.random(n) < 0.08, "R1", "R0"),
            "margin_mm": rng.gamma(2, 4, n).round(1),
            "capsule_pathology": rng.choice(
                ["complete", "incomplete", "absent"], n, p=[0.55, 0.3, 0.15]
            ),
            "surgery_date": surgery,
        }
    )
    clinical.loc[clinical["margin_status"] == "R1", "margin_mm"] = 0.0
    # risk and confounded treatment
    lp = 0.95 * z + 0.25 * cirrh + 0.03 * (40 - albumin) + 0.3 * mvi
    logits = np.stack(
        [np.zeros(n), -0.4 + 0.9 * mvi + 0.3 * (size > 5), -1.3 + 1.1 * mvi + 0.5 * z], 1
    )
    prop = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    arm = np.array([rng.choice(3, p=p) for p in prop])
    eff = _arm_effects(z, inflamed)
    lp_obs = lp + eff[np.arange(n), arm]
    # times: recurrence (Weibull PH) and death without recurrence (exponential)
    t_rec = _LAMBDA * (-np.log(rng.random(n)) / np.exp(lp_obs)) ** (1 / _K)
    t_death = rng.exponential(1 / _DEATH, n)
    admin = rng.uniform(24, 72, n)
    loss = rng.exponential(250, n)
    t_cens = np.minimum(admin, loss)
    rec = (t_rec <= t_death) & (t_rec <= t_cens)
    death = (t_death < t_rec) & (t_death <= t_cens)
    t_end = np.minimum.reduce([t_rec, t_death, t_cens])
    p_agg = _sig(1.4 * z - 0.2)
    agg = rng.random(n) < p_agg
    days = pd.to_timedelta(np.round(t_end * 30.4375), unit="D")
    clinical["adjuvant"] = np.array(ARMS)[arm]
    clinical["recurrence"] = rec
    clinical["recurrence_date"] = (surgery + days).where(rec)
    clinical["recurrence_site"] = pd.Series(
        np.where(agg & (rng.random(n) < 0.3), "extrahepatic", "intrahepatic")
    ).where(rec)
    clinical["recurrence_pattern"] = pd.Series(np.where(agg, "multinodular", "solitary")).where(rec)
    clinical["death"] = death
    clinical["death_date"] = (surgery + days).where(death)
    clinical["last_followup_date"] = surgery + days
    grid = np.linspace(0, 24, 241)
    oracle = pd.DataFrame({"patient_id": pid, "true_lp": lp})
    s_obs = _surv(24.0, lp_obs)
    oracle["true_p_aggressive24"] = (1 - s_obs) * p_agg
    for a, name in enumerate(ARMS):
        s = _surv(grid[None, :], (lp + eff[:, a])[:, None])
        oracle[f"true_rfs24_{name}"] = s[:, -1]
        oracle[f"true_rmst24_{name}"] = np.trapezoid(s, grid, axis=1)
        oracle[f"propensity_{name}"] = prop[:, a]
    best = oracle[[f"true_rfs24_{a}" for a in ARMS]].to_numpy().argmax(1)
    oracle["true_best_arm"] = np.array(ARMS)[best]
    return ToyCohort(clinical, latent, oracle)


# the proxies live in the library so that tests, the benchmark and the demo share them
from hccstrat.synthetic.image_proxies import (  # noqa: E402, F401
    MEASUREMENT_NOISE,
    make_image_feature_proxies,
)
