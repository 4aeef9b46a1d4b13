"""The :class:`SyntheticCohort` container: five tables, saved and loaded atomically."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hccstrat.exceptions import InputFileError
from hccstrat.io.atomic import atomic_path, atomic_write
from hccstrat.schema import coerce
from hccstrat.survival import endpoint
from hccstrat.synthetic._latent import IMMUNE_PHENOTYPES
from hccstrat.synthetic._outcomes import ARMS

__all__ = ["SyntheticCohort", "latent_dtypes"]

_FILES = ("clinical.csv", "latent.csv", "oracle.csv", "centres.csv", "config.json")
_BOOL_LATENT = ("vascular_invasion", "macrotrabecular", "afp_producer")


@dataclass
class SyntheticCohort:
    """A synthetic cohort: clinical table, latent traits, oracle, centres and config.

    Attributes
    ----------
    clinical : DataFrame
        Canonical clinical table (passes :func:`hccstrat.schema.validate`).
    latent : DataFrame
        ``patient_id`` and latent variables (never model inputs).
    oracle : DataFrame
        ``patient_id`` and the truth (see :func:`hccstrat.synthetic._outcomes.oracle_table`).
    centres : DataFrame
        One row per centre.
    config : dict
        Arguments the cohort was generated with.
    """

    clinical: pd.DataFrame
    latent: pd.DataFrame
    oracle: pd.DataFrame
    centres: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.clinical)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``clinical.csv``, ``latent.csv``, ``oracle.csv``, ``centres.csv`` and
        ``config.json`` into ``folder`` (created if needed), each file atomically.

        Returns
        -------
        Path
            The folder.
        """
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputFileError(
                f"cannot create the output folder '{folder}': {err}",
                hint="choose a writable folder with --out",
            ) from err
        for name, frame in (
            ("clinical.csv", self.clinical),
            ("latent.csv", self.latent),
            ("oracle.csv", self.oracle),
            ("centres.csv", self.centres),
        ):
            with atomic_path(folder / name) as tmp:
                frame.to_csv(tmp, index=False, date_format="%Y-%m-%d")
        with atomic_write(folder / "config.json") as fh:
            json.dump(self.config, fh, indent=2, sort_keys=True)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> SyntheticCohort:
        """Read a cohort written by :meth:`save`.

        Raises
        ------
        InputFileError
            If a file is missing or unreadable.
        """
        folder = Path(folder)
        missing = [f for f in _FILES if not (folder / f).is_file()]
        if missing:
            raise InputFileError(
                f"'{folder}' is not a saved synthetic cohort: missing {', '.join(missing)}",
                hint="point to a folder written by SyntheticCohort.save / 'hccstrat cohort synth'",
            )
        try:
            read = {
                f: pd.read_csv(folder / f, float_precision="round_trip", low_memory=False)
                for f in _FILES[:4]
            }
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputFileError(f"cannot read the cohort in '{folder}': {err}") from err
        return cls(
            clinical=coerce(read["clinical.csv"]),
            latent=latent_dtypes(read["latent.csv"]),
            oracle=_oracle_dtypes(read["oracle.csv"]),
            centres=read["centres.csv"],
            config=config,
        )

    def summary(self) -> dict[str, float]:
        """Key figures for a quick check against DOMAIN.md (fractions, months)."""
        c = self.clinical
        rfs = endpoint(c, "rfs")
        os_ = endpoint(c, "os")
        arms = c["adjuvant"].value_counts(normalize=True)
        return {
            "patients": float(len(c)),
            "centres": float(c["centre"].nunique()),
            "median age": float(c["age"].median()),
            "male": float((c["sex"] == "M").mean()),
            "HBV": float((c["aetiology"] == "HBV").mean()),
            "cirrhosis": float(c["cirrhosis"].mean()),
            "median AFP (ng/mL)": float(c["afp_ng_ml"].median()),
            "AFP >= 400": float(c["afp_ge_400"].mean()),
            "median size (cm)": float(c["tumour_size_cm"].median()),
            "MVI": float(c["mvi"].mean()),
            **{f"arm {a}": float(arms.get(a, 0.0)) for a in ARMS},
            "recurrence by 24 mo (KM)": 1 - _km_at(endpoint(c, "recurrence"), 24.0),
            "RFS at 24 mo (KM)": _km_at(rfs, 24.0),
            "OS at 60 mo (KM)": _km_at(os_, 60.0),
        }


def _km_at(y: np.ndarray, t: float) -> float:
    """Kaplan-Meier survival at ``t`` from a structured (event, time) array."""
    time, event = y["time"], y["event"]
    order = np.lexsort((~event, time))
    time, event = time[order], event[order]
    at_risk = len(time) - np.arange(len(time))
    factors = np.where(event & (time <= t), 1.0 - 1.0 / at_risk, 1.0)
    return float(np.prod(factors))


def latent_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["patient_id"] = out["patient_id"].astype(str)
    out["centre"] = out["centre"].astype(str)
    out["immune_phenotype"] = pd.Categorical(
        out["immune_phenotype"], categories=list(IMMUNE_PHENOTYPES)
    )
    for col in _BOOL_LATENT:
        out[col] = out[col].astype(bool)
    for col in ("tumour_number", "tumour_segment", "mri_gap_days"):
        out[col] = out[col].astype(np.int64)
    return out


def _oracle_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["patient_id"] = out["patient_id"].astype(str)
    out["true_best_arm"] = out["true_best_arm"].astype(str)
    for c in out.columns:
        if c.startswith("propensity_"):
            out[c] = out[c].astype(float)
    return out
