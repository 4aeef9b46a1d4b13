"""ERASL-pre and ERASL-post: early recurrence after surgery for liver tumour.

Reference: Chan AWH, Zhong J, Berhane S, et al. Development of pre and post-operative
models to predict early recurrence of hepatocellular carcinoma after surgery.
J Hepatol 2018;69:1284-1293.

Variable sets (as reported for the two models; Cox models of recurrence-free
survival, score = linear predictor):

- ERASL-pre: male sex, ALBI grade, serum AFP (log10), largest tumour diameter,
  multiple tumours.
- ERASL-post: the same plus microvascular invasion (pathology).

.. warning::
   COEFFICIENTS NOT VERIFIED. The published coefficient table, risk-group cut-offs
   and baseline recurrence-free survival of Chan et al. 2018 could not be retrieved
   while this module was written (only papers citing it were reachable). The
   defaults :data:`ERASL_PRE` and :data:`ERASL_POST` therefore carry *provisional*
   values chosen by hccstrat (log hazard ratios of plausible size for these factors
   in resection cohorts) and ``verified=False``; the variable set above is also
   taken from secondary descriptions of the paper. Every output says so (column
   ``erasl_coefficients``) and no probability is computed from them. To use the
   published model, write its table to a YAML file (see :func:`load_erasl_model`)
   and pass it to :func:`hccstrat.clinical.scores.compute_scores` or to
   ``hccstrat scores --erasl-pre/--erasl-post``.

AFP is used as ``log10(max(AFP, 1 ng/mL))``; the categorical ``afp_ge_400`` cannot
replace the number, so a patient with only that is missing with the reason. Risk
groups: low if score <= first cut-off, intermediate if <= second, high above. The
2-year probability of early recurrence is ``1 - S0(24 months) ** exp(score - centre)``
when the model carries a baseline survival ``S0``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hccstrat.clinical._inputs import Inputs, from_codes, reasons
from hccstrat.exceptions import ConfigError, InputFileError

__all__ = [
    "ERASL_POST",
    "ERASL_PRE",
    "ERASL_TERMS",
    "EraslModel",
    "erasl_frame",
    "load_erasl_model",
]

log = logging.getLogger(__name__)

#: Terms a model may use, with what they mean.
ERASL_TERMS: dict[str, str] = {
    "male": "1 if sex is M, 0 if F",
    "albi_grade": "ALBI grade 1, 2 or 3 (Johnson 2015)",
    "log10_afp": "log10 of AFP in ng/mL (values below 1 count as 1)",
    "tumour_size_cm": "diameter of the largest tumour in cm",
    "tumour_multiple": "1 if two or more nodules, else 0",
    "mvi": "1 if microvascular invasion on pathology, else 0",
}

GROUPS: tuple[str, ...] = ("low", "intermediate", "high")

_WARNED: set[str] = set()  # model names already warned about (once per process)


@dataclass(frozen=True)
class EraslModel:
    """Coefficients of an ERASL-type Cox model.

    Attributes
    ----------
    name : str
        Label used in messages (``"ERASL-pre"``).
    coefficients : mapping of str to float
        Term (one of :data:`ERASL_TERMS`) to coefficient; the score is their sum.
    cutoffs : tuple of float
        ``(c1, c2)``: low if score <= c1, intermediate if <= c2, high above.
    baseline_rfs_24m : float, optional
        Baseline recurrence-free survival at 24 months, ``S0(24)`` at score ``centre``.
    centre : float
        Score at which ``baseline_rfs_24m`` applies (0 for an uncentred model).
    source : str
        Where the numbers come from (paper and table).
    verified : bool
        ``True`` only when the numbers were checked against the publication.
    """

    name: str
    coefficients: Mapping[str, float] = field(default_factory=dict)
    cutoffs: tuple[float, float] = (0.0, 0.0)
    baseline_rfs_24m: float | None = None
    centre: float = 0.0
    source: str = ""
    verified: bool = False

    def check(self) -> EraslModel:
        """Raise :class:`ConfigError` if the model is inconsistent; return self."""
        unknown = sorted(set(self.coefficients) - set(ERASL_TERMS))
        if unknown:
            raise ConfigError(
                f"{self.name}: unknown term(s) {', '.join(unknown)}",
                hint="use only " + ", ".join(ERASL_TERMS),
            )
        if not self.coefficients:
            raise ConfigError(f"{self.name}: no coefficients", hint="give at least one term")
        bad = [k for k, v in self.coefficients.items() if not math.isfinite(float(v))]
        if bad:
            raise ConfigError(f"{self.name}: non-finite coefficient(s) {bad}")
        c1, c2 = self.cutoffs
        if not c1 <= c2:
            raise ConfigError(
                f"{self.name}: cut-offs {self.cutoffs} are not increasing",
                hint="give [low/intermediate, intermediate/high] with the first <= the second",
            )
        s0 = self.baseline_rfs_24m
        if s0 is not None and not 0.0 < s0 < 1.0:
            raise ConfigError(f"{self.name}: baseline_rfs_24m must be between 0 and 1, got {s0}")
        return self

    @property
    def label(self) -> str:
        """Provenance shown in the output."""
        if self.verified:
            return f"{self.name}: verified" + (f" ({self.source})" if self.source else "")
        return f"{self.name}: provisional, not verified against Chan et al. 2018"


_PROVISIONAL_SOURCE = (
    "hccstrat provisional values, not the coefficients of Chan et al. J Hepatol 2018"
)

#: ERASL-pre with PROVISIONAL coefficients (see the module warning).
ERASL_PRE = EraslModel(
    name="ERASL-pre",
    coefficients={
        "male": 0.26,  # HR ~1.3
        "albi_grade": 0.26,  # HR ~1.3 per grade
        "log10_afp": 0.25,  # HR ~1.3 per tenfold AFP
        "tumour_size_cm": 0.06,  # HR ~1.06 per cm
        "tumour_multiple": 0.47,  # HR ~1.6
    },
    cutoffs=(1.2, 1.8),
    source=_PROVISIONAL_SOURCE,
    verified=False,
)

#: ERASL-post with PROVISIONAL coefficients (see the module warning).
ERASL_POST = EraslModel(
    name="ERASL-post",
    coefficients={**ERASL_PRE.coefficients, "mvi": 0.59},  # MVI HR ~1.8
    cutoffs=(1.4, 2.1),
    source=_PROVISIONAL_SOURCE,
    verified=False,
)


def load_erasl_model(path: str | os.PathLike) -> EraslModel:
    """Read an ERASL model from YAML.

    Example::

        name: ERASL-post
        source: "Chan et al., J Hepatol 2018;69:1284, Table 3"
        verified: true
        coefficients: {male: ..., albi_grade: ..., log10_afp: ..., tumour_size_cm: ...,
                       tumour_multiple: ..., mvi: ...}
        cutoffs: [..., ...]
        baseline_rfs_24m: ...      # optional
        centre: 0.0                # optional

    Raises
    ------
    InputFileError
        If the file cannot be read.
    ConfigError
        If its content is not a valid model.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputFileError(
            f"cannot read ERASL model file '{path}': {err}", hint="check the path"
        ) from err
    except yaml.YAMLError as err:
        raise ConfigError(f"'{path}' is not valid YAML: {err}", hint="fix the YAML syntax") from err
    if not isinstance(data, dict):
        raise ConfigError(f"'{path}' must hold a mapping with coefficients and cutoffs")
    allowed = {
        "name",
        "coefficients",
        "cutoffs",
        "baseline_rfs_24m",
        "centre",
        "source",
        "verified",
    }
    extra = sorted(set(data) - allowed)
    if extra:
        raise ConfigError(
            f"'{path}': unknown key(s) {extra}", hint="allowed: " + ", ".join(sorted(allowed))
        )
    try:
        cut = data.get("cutoffs")
        if not isinstance(cut, (list, tuple)) or len(cut) != 2:
            raise ConfigError(f"'{path}': cutoffs must be a list of two numbers")
        s0 = data.get("baseline_rfs_24m")
        model = EraslModel(
            name=str(data.get("name", path.stem)),
            coefficients={
                str(k): float(v) for k, v in dict(data.get("coefficients") or {}).items()
            },
            cutoffs=(float(cut[0]), float(cut[1])),
            baseline_rfs_24m=None if s0 is None else float(s0),
            centre=float(data.get("centre", 0.0)),
            source=str(data.get("source", "")),
            verified=bool(data.get("verified", False)),
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"'{path}': {err}", hint="coefficients and cut-offs must be numbers"
        ) from err
    return model.check()


def _terms(x: Inputs, albi_grade: np.ndarray) -> dict[str, tuple[np.ndarray, list]]:
    """Value of every term and the reasons it can be missing."""
    afp = x.get("afp_ng_ml")
    afp_only_cat = np.isnan(afp) & ~x.missing("afp_ge_400")
    multiple = x.number_cmp(">=", 2)
    size = x.get("tumour_size_cm")
    albi_parts = [
        ("bilirubin_umol_l", x.missing("bilirubin_umol_l")),
        ("albumin_g_l", x.missing("albumin_g_l")),
        (
            "bilirubin_umol_l (must be > 0 for the logarithm)",
            np.isnan(albi_grade) & ~x.missing("bilirubin_umol_l") & ~x.missing("albumin_g_l"),
        ),
    ]
    return {
        "male": (x.get("sex"), [("sex", x.missing("sex"))]),
        "albi_grade": (albi_grade, albi_parts),
        "log10_afp": (
            np.log10(np.maximum(afp, 1.0)),
            [
                ("afp_ng_ml", np.isnan(afp) & ~afp_only_cat),
                ("afp_ng_ml (only afp_ge_400 given; the score needs the number)", afp_only_cat),
            ],
        ),
        "tumour_size_cm": (size, x.burden_reasons("size", np.isnan(size))),
        "tumour_multiple": (
            multiple.to_numpy(dtype=float, na_value=np.nan),
            x.burden_reasons("number", multiple.isna()),
        ),
        "mvi": (x.get("mvi"), [("mvi", x.missing("mvi"))]),
    }


def erasl_frame(x: Inputs, albi_grade: np.ndarray, model: EraslModel, prefix: str) -> pd.DataFrame:
    """Score, risk group, 2-year risk and missing inputs of one ERASL model.

    Columns: ``{prefix}_score``, ``{prefix}_group``, ``{prefix}_risk_24m``,
    ``{prefix}_missing``.
    """
    model.check()
    if not model.verified and model.name not in _WARNED:
        _WARNED.add(model.name)
        log.warning(
            "%s uses provisional coefficients that were not verified against the paper",
            model.name,
        )
    terms = _terms(x, np.asarray(albi_grade, dtype=float))
    score = np.zeros(x.n)
    parts: list = []
    for term, coef in model.coefficients.items():
        value, why = terms[term]
        score = score + float(coef) * value
        parts += why
    c1, c2 = model.cutoffs
    sr = np.round(score, 9)
    with np.errstate(invalid="ignore"):
        group = np.where(np.isnan(score), -1, np.where(sr <= c1, 0, np.where(sr <= c2, 1, 2)))
    if model.baseline_rfs_24m is None:
        risk = np.full(x.n, np.nan)
    else:
        risk = 1.0 - np.power(model.baseline_rfs_24m, np.exp(score - model.centre))
    return pd.DataFrame(
        {
            f"{prefix}_score": score,
            f"{prefix}_group": from_codes(group, GROUPS, x.index),
            f"{prefix}_risk_24m": risk,
            f"{prefix}_missing": reasons(parts, x.index),
        },
        index=x.index,
    )
