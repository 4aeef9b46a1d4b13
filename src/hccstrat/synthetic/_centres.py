"""Centre table of the synthetic cohort: site, scanners, stain shifts and case mix.

One row per centre. The MRI and WSI generators read the acquisition columns to
render images the way each site would (vendor tags, intensity scaling, stain
shifts); the patient generator reads the case-mix and practice columns.

Columns
-------
centre : str
    Code, ``CN01``... for Chinese centres and ``W01``... for Western ones.
name, country, region : str
    Plain-language site description; ``region`` is ``"East Asia"``, ``"Europe"``
    or ``"North America"``.
western : bool
    Western case mix (older patients, more HCV / alcohol / MASLD, less adjuvant TACE).
weight : float
    Share of the cohort's patients treated at this centre (sums to 1).
scanner_vendor : str
    ``"GE"``, ``"Siemens"``, ``"Philips"`` or ``"UIH"`` (United Imaging, Chinese
    series descriptions: ``series_language == "zh"``).
scanner_model, field_strength_t, series_language
    Scanner model name, field strength (1.5 or 3.0 T) and language of the DICOM
    SeriesDescription (``"zh"`` or ``"en"``).
mri_intensity_scale, mri_intensity_offset, mri_noise_sd
    Multiplicative scale and additive offset applied to the stored pixel values,
    and Rician-like noise level relative to liver signal.
mri_pixel_spacing_mm, mri_slice_thickness_mm
    Typical in-plane spacing and slice thickness of the T1 3D gradient-echo series.
wsi_scanner, wsi_mpp
    Slide scanner and its level-0 resolution (micrometres per pixel).
stain_h_r, stain_h_g, stain_h_b, stain_e_r, stain_e_g, stain_e_b
    Unit optical-density vectors of haematoxylin and eosin at this site: the
    Ruifrok & Johnston reference vectors, rotated a little per site.
stain_h_scale, stain_e_scale
    Multiplicative scale of the stain concentrations (over/under-staining).
stain_background
    Grey level (0-255) of the slide background (glass) at this site.
casemix_shift
    Shift of the mean latent aggressiveness of the centre's patients.
tace_preference, tki_preference
    Centre-level log-odds shifts of choosing adjuvant TACE / TACE+TKI.
loss_rate_per_year
    Yearly rate of loss to follow-up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["CENTRE_COLUMNS", "VENDORS", "make_centres", "n_western_default"]

VENDORS: tuple[str, ...] = ("GE", "Siemens", "Philips", "UIH")

_MODELS = {
    "GE": (("Discovery MR750", 3.0), ("SIGNA Architect", 3.0), ("SIGNA Explorer", 1.5)),
    "Siemens": (("MAGNETOM Skyra", 3.0), ("MAGNETOM Prisma", 3.0), ("MAGNETOM Aera", 1.5)),
    "Philips": (("Ingenia", 3.0), ("Achieva dStream", 3.0), ("Ingenia Ambition", 1.5)),
    "UIH": (("uMR 780", 3.0), ("uMR 790", 3.0), ("uMR 588", 1.5)),
}
_WSI_SCANNERS = (
    ("Aperio GT450", 0.263),
    ("Hamamatsu NanoZoomer S360", 0.230),
    ("3DHISTECH Pannoramic 250", 0.243),
    ("KFBIO KF-PRO-005", 0.250),
    ("Leica Aperio AT2", 0.252),
)
_CN_CITIES = (
    "Wuhan", "Hangzhou", "Shanghai", "Guangzhou", "Beijing", "Chengdu", "Nanjing",
    "Changsha", "Xi'an", "Chongqing", "Tianjin", "Shenyang", "Fuzhou", "Jinan", "Kunming",
)
_WEST = (
    ("Italy", "Europe", "Milan"),
    ("USA", "North America", "Boston"),
    ("France", "Europe", "Paris"),
    ("Germany", "Europe", "Hannover"),
    ("Spain", "Europe", "Barcelona"),
    ("UK", "Europe", "London"),
)
#: Ruifrok & Johnston optical-density stain vectors (DOMAIN.md, H&E histology)
_H_REF = np.array([0.650, 0.704, 0.286])
_E_REF = np.array([0.072, 0.990, 0.105])

CENTRE_COLUMNS: tuple[str, ...] = (
    "centre", "name", "country", "region", "western", "weight", "scanner_vendor",
    "scanner_model", "field_strength_t", "series_language", "mri_intensity_scale",
    "mri_intensity_offset", "mri_noise_sd", "mri_pixel_spacing_mm", "mri_slice_thickness_mm",
    "wsi_scanner", "wsi_mpp", "stain_h_r", "stain_h_g", "stain_h_b", "stain_e_r", "stain_e_g",
    "stain_e_b", "stain_h_scale", "stain_e_scale", "stain_background", "casemix_shift",
    "tace_preference", "tki_preference", "loss_rate_per_year",
)


def n_western_default(n_centres: int) -> int:
    """Number of Western centres by default: none for 1-2 centres, 1 up to 6, else 2."""
    if n_centres <= 2:
        return 0
    return 1 if n_centres <= 6 else 2


def _rotate(v: np.ndarray, rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """Rotate unit vector ``v`` by a random small angle about a random axis."""
    axis = rng.normal(size=3)
    axis -= axis.dot(v) * v
    axis /= np.linalg.norm(axis)
    theta = np.deg2rad(rng.uniform(-max_deg, max_deg))
    out = v * np.cos(theta) + np.cross(axis, v) * np.sin(theta)
    out = np.abs(out)
    return out / np.linalg.norm(out)


def make_centres(n_centres: int, n_western: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw the centre table.

    Parameters
    ----------
    n_centres : int
        Number of centres (>= 1).
    n_western : int
        How many of them have a Western case mix (placed last).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    DataFrame
        One row per centre with the columns in :data:`CENTRE_COLUMNS`.
    """
    n_cn = n_centres - n_western
    western = np.r_[np.zeros(n_cn, bool), np.ones(n_western, bool)]
    # vendors: Chinese centres cycle through all four (UIH included) from a random
    # start, Western ones through GE/Siemens/Philips, so small cohorts still mix vendors
    cn_cycle = list(rng.permutation(VENDORS))
    w_cycle = list(rng.permutation(VENDORS[:3]))
    vendors = [cn_cycle[i % 4] for i in range(n_cn)] + [w_cycle[i % 3] for i in range(n_western)]
    cities = rng.permutation(len(_CN_CITIES))
    rows = []
    # Chinese tertiary centres are larger than the Western ones in these consortia
    raw_w = rng.gamma(4.0, 1.0, size=n_centres) * np.where(western, 0.6, 1.0)
    weights = raw_w / raw_w.sum()
    for i in range(n_centres):
        vendor = vendors[i]
        model, tesla = _MODELS[vendor][int(rng.integers(len(_MODELS[vendor])))]
        if western[i]:
            j = i - n_cn
            country, region, city = _WEST[j % len(_WEST)]
            code = f"W{j + 1:02d}"
        else:
            country, region = "China", "East Asia"
            city = _CN_CITIES[cities[i % len(_CN_CITIES)]]
            code = f"CN{i + 1:02d}"
        scanner, mpp = _WSI_SCANNERS[int(rng.integers(len(_WSI_SCANNERS)))]
        h = _rotate(_H_REF / np.linalg.norm(_H_REF), rng, 6.0)
        e = _rotate(_E_REF / np.linalg.norm(_E_REF), rng, 6.0)
        rows.append(
            {
                "centre": code,
                "name": f"{city} synthetic liver centre",
                "country": country,
                "region": region,
                "western": bool(western[i]),
                "weight": float(weights[i]),
                "scanner_vendor": vendor,
                "scanner_model": model,
                "field_strength_t": tesla,
                "series_language": "zh" if vendor == "UIH" else "en",
                "mri_intensity_scale": float(np.exp(rng.normal(0.0, 0.35))),
                "mri_intensity_offset": float(rng.uniform(0.0, 60.0)),
                "mri_noise_sd": float(rng.uniform(0.02, 0.06) * (1.3 if tesla < 2 else 1.0)),
                "mri_pixel_spacing_mm": float(np.round(rng.uniform(1.2, 1.6), 3)),
                "mri_slice_thickness_mm": float(rng.choice([2.0, 2.5, 3.0, 4.0, 5.0])),
                "wsi_scanner": scanner,
                "wsi_mpp": mpp,
                "stain_h_r": float(h[0]),
                "stain_h_g": float(h[1]),
                "stain_h_b": float(h[2]),
                "stain_e_r": float(e[0]),
                "stain_e_g": float(e[1]),
                "stain_e_b": float(e[2]),
                "stain_h_scale": float(np.exp(rng.normal(0.0, 0.15))),
                "stain_e_scale": float(np.exp(rng.normal(0.0, 0.15))),
                "stain_background": float(rng.uniform(225.0, 250.0)),
                "casemix_shift": float(rng.normal(0.0, 0.2)),
                # adjuvant TACE is rarely given after resection in the West
                "tace_preference": float(rng.normal(-1.5 if western[i] else 0.0, 0.5)),
                "tki_preference": float(rng.normal(-1.0 if western[i] else 0.0, 0.5)),
                "loss_rate_per_year": float(rng.uniform(0.01, 0.05)),
            }
        )
    return pd.DataFrame(rows, columns=list(CENTRE_COLUMNS))
