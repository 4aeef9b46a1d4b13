"""Neoadjuvant regimen of NCT07282184: doses and dose levels.

- HAIC mFOLFOX6 (via the hepatic artery), per m² of body-surface area (Mosteller
  ``sqrt(height_cm * weight_kg / 3600)``): oxaliplatin 85 mg/m², leucovorin 400 mg/m²,
  5-FU 400 mg/m² bolus then 2400 mg/m² over 46 h.
- Lenvatinib by weight: 8 mg/day if < 60 kg, 12 mg/day if >= 60 kg; reductions
  12 → 8 → 4 mg (from 8: 8 → 4); below 4 mg the drug is stopped.
- PD-1 inhibitor: flat dose (default 200 mg every 3 weeks, a common schedule of
  sintilimab/camrelizumab/tislelizumab; the protocol's agent and dose are parameters).

Cycle length, number of cycles and surgery timing are protocol parameters with
stated defaults (:class:`NeoadjuvantProtocol`); they are not fixed by the registration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hccstrat.exceptions import ConfigError

__all__ = [
    "LENVATINIB_LEVELS",
    "MFOLFOX6_MG_PER_M2",
    "NeoadjuvantProtocol",
    "bsa_mosteller",
    "haic_doses",
    "lenvatinib_reduce",
    "lenvatinib_start_dose",
    "neoadjuvant_doses",
]

#: mFOLFOX6 doses per m² (5-FU infusion over 46 h).
MFOLFOX6_MG_PER_M2 = {"oxaliplatin": 85.0, "leucovorin": 400.0, "fluorouracil_bolus": 400.0,
                      "fluorouracil_infusion_46h": 2400.0}

#: Lenvatinib dose levels (mg/day), highest first.
LENVATINIB_LEVELS = (12, 8, 4)


@dataclass(frozen=True)
class NeoadjuvantProtocol:
    """Schedule parameters of the neoadjuvant phase (defaults are assumptions)."""

    cycle_days: int = 21
    n_cycles: int = 3
    pd1_dose_mg: float = 200.0
    pd1_agent: str = "PD-1 inhibitor"
    lenvatinib_stop_days_before_surgery: int = 7
    surgery_min_days_after_last_cycle: int = 21
    surgery_max_days_after_last_cycle: int = 42
    bsa_cap_m2: float | None = None


def bsa_mosteller(height_cm, weight_kg):
    """Body-surface area (m²) by Mosteller; arrays broadcast.

    Raises
    ------
    ConfigError
        For non-positive or implausible height/weight (height 100–230 cm, weight 20–300 kg).
    """
    h = np.asarray(height_cm, float)
    w = np.asarray(weight_kg, float)
    bad = ~((h >= 100) & (h <= 230) & (w >= 20) & (w <= 300))
    if np.any(bad & ~(np.isnan(h) | np.isnan(w))):
        raise ConfigError(f"implausible height/weight: {h[bad & ~np.isnan(h)]} cm, "
                          f"{w[bad & ~np.isnan(w)]} kg",
                          hint="height in cm (100-230), weight in kg (20-300)")
    out = np.sqrt(h * w / 3600.0)
    return float(out) if out.ndim == 0 else out


def haic_doses(height_cm: float, weight_kg: float, *, bsa_cap_m2: float | None = None,
               dose_fraction: float = 1.0) -> dict[str, float]:
    """mFOLFOX6 HAIC doses (mg, rounded to 1 mg) for one patient.

    Parameters
    ----------
    bsa_cap_m2 : float, optional
        Cap on BSA (some protocols cap at 2.0 m²).
    dose_fraction : float
        Fraction of the full dose after a reduction (e.g. 0.8).
    """
    bsa = bsa_mosteller(height_cm, weight_kg)
    if bsa_cap_m2 is not None:
        bsa = min(bsa, bsa_cap_m2)
    out = {"bsa_m2": round(bsa, 3)}
    for drug, per_m2 in MFOLFOX6_MG_PER_M2.items():
        out[f"{drug}_mg"] = float(np.round(per_m2 * bsa * dose_fraction))
    out["fluorouracil_infusion_mg_per_h"] = round(out["fluorouracil_infusion_46h_mg"] / 46.0, 1)
    return out


def lenvatinib_start_dose(weight_kg: float) -> int:
    """Lenvatinib starting dose: 8 mg if < 60 kg, else 12 mg."""
    if not np.isfinite(weight_kg) or weight_kg <= 0:
        raise ConfigError(f"weight {weight_kg!r} kg is not usable for lenvatinib dosing")
    return 8 if weight_kg < 60 else 12


def lenvatinib_reduce(current_mg: int) -> int:
    """Next lower lenvatinib dose (12 → 8 → 4 → 0 = stop)."""
    if current_mg not in LENVATINIB_LEVELS:
        raise ConfigError(f"{current_mg} mg is not a lenvatinib dose level {LENVATINIB_LEVELS}")
    i = LENVATINIB_LEVELS.index(current_mg)
    return LENVATINIB_LEVELS[i + 1] if i + 1 < len(LENVATINIB_LEVELS) else 0


def neoadjuvant_doses(patients: pd.DataFrame, protocol: NeoadjuvantProtocol | None = None
                      ) -> pd.DataFrame:
    """Doses for every patient (``patient_id``, ``height_cm``, ``weight_kg``).

    Patients with missing height/weight get missing doses and ``dose_note`` says why.
    """
    protocol = protocol or NeoadjuvantProtocol()
    rows = []
    for r in patients.itertuples(index=False):
        h, w = getattr(r, "height_cm", np.nan), getattr(r, "weight_kg", np.nan)
        row = {"patient_id": str(r.patient_id)}
        if pd.isna(h) or pd.isna(w):
            row["dose_note"] = "height or weight missing: doses not computed"
        else:
            row |= haic_doses(float(h), float(w), bsa_cap_m2=protocol.bsa_cap_m2)
            row["lenvatinib_mg_day"] = lenvatinib_start_dose(float(w))
            row["pd1_mg"] = protocol.pd1_dose_mg
            row["dose_note"] = ""
        rows.append(row)
    return pd.DataFrame(rows)
