"""Stand-ins for the image pipelines' feature tables, simulated from the latent traits.

Used where rendering and measuring every synthetic image would be too slow (the
models benchmark, tests, the demo's model stage): each feature is what the MRI and
WSI pipelines measure — the latent trait the image generators render — with
documented measurement noise. Real image features come from
:mod:`hccstrat.radiology.features` and :mod:`hccstrat.pathology.time`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["MEASUREMENT_NOISE", "make_image_feature_proxies"]

#: latent ``mri_*`` columns that are not image traits
_NOT_IMAGE = {"mri_gap_days"}


#: Measurement noise of the image pipelines, in sd units of each standardised latent trait:
#: 0.33 is a test-retest intraclass correlation of 1 / (1 + 0.33**2) ~ 0.9, typical of
#: reproducible radiomic and TIME (cell-density) features.
MEASUREMENT_NOISE = 0.33


def make_image_feature_proxies(
    latent: pd.DataFrame, seed: int = 0, noise: float = MEASUREMENT_NOISE
) -> dict:
    """Simulate the image pipelines' feature tables from the latent traits.

    What the MRI and WSI pipelines measure is the latent trait the image generators
    render (``mri_*`` traces for MRI; lymphocyte densities, stroma, necrosis, vascular
    invasion, macrotrabecular pattern and immune phenotype for the WSI TIME panel),
    not aggressiveness itself: the traces already carry their own biological noise
    around aggressiveness (``hccstrat.synthetic._latent.TRACE_SD``). On top of that,
    each feature is the standardised latent value plus Gaussian measurement noise of
    sd ``noise`` (default :data:`MEASUREMENT_NOISE`, ICC ~0.9), passed through a mild
    monotone distortion (``tanh(0.8 x)``, like a bounded image measurement). The
    immune phenotype is measured the same way as three noisy indicator scores
    (``time_phenotype_*``), so it is not known exactly.

    Returns
    -------
    dict
        ``{"rad_": DataFrame, "time_": DataFrame}`` keyed by ``patient_id`` — the
        form :func:`hccstrat.models.join_feature_tables` takes.
    """
    rng = np.random.default_rng(seed)
    mri = [c for c in latent.columns if c.startswith("mri_") and c not in _NOT_IMAGE]
    hist = [
        c
        for c in (
            "lymphocyte_density",
            "margin_lymphocyte_density",
            "stroma_fraction",
            "necrosis_fraction",
            "vascular_invasion",
            "macrotrabecular",
        )
        if c in latent
    ]

    def measure(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, float)
        v = (v - v.mean()) / (v.std() + 1e-9)
        return np.tanh(0.8 * (v + noise * rng.normal(size=len(v))))

    rad = pd.DataFrame({"patient_id": latent["patient_id"].to_numpy()})
    for c in mri:
        rad[f"rad_{c}"] = measure(latent[c].to_numpy())
    time = pd.DataFrame({"patient_id": latent["patient_id"].to_numpy()})
    for c in hist:
        time[f"time_{c}"] = measure(latent[c].to_numpy())
    if "immune_phenotype" in latent:
        for p in ("inflamed", "excluded", "desert"):
            time[f"time_phenotype_{p}"] = measure(
                (latent["immune_phenotype"].astype(str) == p).to_numpy(float)
            )
    return {"rad_": rad, "time_": time}
