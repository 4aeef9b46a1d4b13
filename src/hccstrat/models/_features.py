"""Feature assembly: canonical clinical table (+ optional image tables) → numeric matrix.

Models take one wide DataFrame: the canonical clinical columns
(:mod:`hccstrat.schema`) joined, on ``patient_id``, with per-patient image feature
tables whose columns carry a prefix naming their source (:data:`IMAGE_PREFIXES`):

- ``rad_*``: MRI radiomic features; ``mricnn_*``: MRI CNN embedding;
- ``time_*``: WSI tumour-immune-microenvironment (TIME) panel; ``wsi_*``: slide embedding.

:class:`FeatureAssembler` learns, in ``fit``, which inputs the table holds and records
in a :class:`LackingReport` what it lacked. When a number is missing but its
*categorical version* is present (``afp_ge_400`` for ``afp_ng_ml``), it is used
instead: a whole missing column is replaced by the categorical feature; a missing
value in one row is imputed with the training median *within that category*.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from hccstrat.exceptions import DataValidationError, ModelError, Problem, ValidationReport

__all__ = [
    "IMAGE_MODALITIES",
    "IMAGE_PREFIXES",
    "QC_COLUMNS",
    "STAGE_INPUTS",
    "FeatureAssembler",
    "InputSpec",
    "LackingReport",
    "join_feature_tables",
]

log = logging.getLogger(__name__)

#: Prefix of image-derived feature columns → what they are.
IMAGE_PREFIXES: dict[str, str] = {
    "rad_": "MRI radiomic features",
    "mricnn_": "MRI CNN embedding",
    "time_": "WSI TIME panel",
    "wsi_": "WSI slide embedding",
}
#: Modality → prefixes that can supply it (a modality is lacking when none is present).
IMAGE_MODALITIES: dict[str, tuple[str, ...]] = {
    "mri": ("rad_", "mricnn_"),
    "wsi": ("time_", "wsi_"),
}
_STAGE_MODALITIES = {"pre": ("mri",), "post": ("mri", "wsi"), "benefit": ("mri", "wsi")}
#: Image-table columns that describe the measurement, not the patient (tile counts, QC
#: pass shares, tissue the classifier did not recognise): never used as model features,
#: so a model cannot learn a site's scanning or QC habits as risk.
QC_COLUMNS: frozenset[str] = frozenset(
    {
        "time_n_tiles",
        "time_qc_pass_fraction",
        "time_unrecognised_fraction",
        "time_panel_unreliable",
        "time_tissue_area_mm2",
    }
)


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.astype("object").where(s.notna(), np.nan), errors="coerce").astype(float)


def _bool(s: pd.Series) -> pd.Series:
    return _num(s.astype("boolean").astype("Float64"))


def _log1p(s: pd.Series) -> pd.Series:
    return np.log1p(_num(s).clip(lower=0))


def _is_in(s: pd.Series, values: tuple[str, ...]) -> pd.Series:
    txt = s.astype("string")
    return txt.isin(values).astype("Float64").where(txt.notna()).astype(float)


def _eq(value: str) -> Callable[[pd.Series], pd.Series]:
    return partial(_is_in, values=(value,))  # partial of a module function: picklable


def _in(values: tuple[str, ...]) -> Callable[[pd.Series], pd.Series]:
    return partial(_is_in, values=tuple(values))


@dataclass(frozen=True)
class InputSpec:
    """One clinical input and how it becomes a model feature.

    Attributes
    ----------
    feature : str
        Name of the model feature.
    column : str
        Canonical column it is computed from.
    transform : callable
        Series → float Series (NaN where missing).
    group : str
        ``"clinical"``, ``"mri_report"`` or ``"pathology"``.
    alternative : str or None
        Categorical version of ``column`` used when the number is missing.
    """

    feature: str
    column: str
    transform: Callable[[pd.Series], pd.Series] = _num
    group: str = "clinical"
    alternative: str | None = None


_CLINICAL = (
    InputSpec("age", "age"),
    InputSpec("male", "sex", _eq("M")),
    InputSpec("hbv", "aetiology", _eq("HBV")),
    InputSpec("hcv", "aetiology", _eq("HCV")),
    InputSpec("cirrhosis", "cirrhosis", _bool),
    InputSpec("ecog", "ecog"),
    InputSpec("log_bilirubin", "bilirubin_umol_l", _log1p),
    InputSpec("albumin", "albumin_g_l"),
    InputSpec("inr", "inr"),
    InputSpec("log_platelets", "platelets_10e9_l", _log1p),
    InputSpec("log_afp", "afp_ng_ml", _log1p, alternative="afp_ge_400"),
    InputSpec("tumour_size", "tumour_size_cm", alternative="tumour_size_gt_5cm"),
    InputSpec("tumour_number", "tumour_number", alternative="tumour_multiple"),
    InputSpec("macrovascular_invasion", "macrovascular_invasion", _bool),
)
_MRI_REPORT = tuple(
    InputSpec(c, c, _bool, group="mri_report")
    for c in (
        "mri_rim_aphe",
        "mri_nonsmooth_margin",
        "mri_washout",
        "mri_capsule",
        "mri_peritumoral_enh",
    )
)
_PATHOLOGY = (
    InputSpec("mvi", "mvi", _bool, "pathology"),
    InputSpec("satellite_nodules", "satellite_nodules", _bool, "pathology"),
    InputSpec("edmondson_grade", "edmondson_grade", group="pathology"),
    InputSpec("margin_r1", "margin_status", _eq("R1"), "pathology"),
    InputSpec("margin_mm", "margin_mm", group="pathology"),
    InputSpec(
        "capsule_not_complete", "capsule_pathology", _in(("incomplete", "absent")), "pathology"
    ),
)
#: Clinical inputs of each stage (image tables are added by prefix).
STAGE_INPUTS: dict[str, tuple[InputSpec, ...]] = {
    "pre": _CLINICAL + _MRI_REPORT,
    "post": _CLINICAL + _MRI_REPORT + _PATHOLOGY,
    "benefit": _CLINICAL + _MRI_REPORT + _PATHOLOGY,
}


@dataclass
class LackingReport:
    """Which inputs a model lacked when it was fitted (or at prediction).

    Attributes
    ----------
    missing_inputs : list of str
        Canonical columns absent (or empty) with no categorical substitute.
    substitutions : dict
        Canonical column → categorical version used instead.
    missing_modalities : list of str
        Image modalities with no feature table (``"mri"``, ``"wsi"``).
    row_missing_fraction : dict
        Feature → fraction of rows where it was missing and imputed.
    """

    missing_inputs: list[str] = field(default_factory=list)
    substitutions: dict[str, str] = field(default_factory=dict)
    missing_modalities: list[str] = field(default_factory=list)
    row_missing_fraction: dict[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.missing_inputs or self.substitutions or self.missing_modalities)

    def summary(self) -> str:
        """One-paragraph plain-language summary."""
        parts = []
        if self.missing_modalities:
            names = {"mri": "MRI image features", "wsi": "WSI features"}
            parts.append("lacked " + ", ".join(names.get(m, m) for m in self.missing_modalities))
        if self.missing_inputs:
            parts.append("lacked clinical inputs " + ", ".join(self.missing_inputs))
        if self.substitutions:
            parts.append(
                "used categorical versions "
                + ", ".join(f"{v} for {k}" for k, v in self.substitutions.items())
            )
        partial = {k: v for k, v in self.row_missing_fraction.items() if v > 0}
        if partial:
            worst = sorted(partial.items(), key=lambda kv: -kv[1])[:5]
            parts.append(
                "imputed missing values in " + ", ".join(f"{k} ({v:.0%})" for k, v in worst)
            )
        return "; ".join(parts) if parts else "no inputs lacking"

    def to_dict(self) -> dict:
        """JSON-serialisable form (for model cards)."""
        return asdict(self)


def _check_numeric_cells(table: pd.DataFrame, source: str) -> None:
    """Refuse text cells (``"n.d."``, ``"12,5"``) and infinite values (``"inf"``) in a
    feature column that holds numbers.

    A text cell would turn the whole column into text, which the models then drop
    (training) or impute for every patient (prediction) without a word; an infinite
    value breaks the learner. Columns without any number (slide names, notes) are left
    alone: they are not features.
    """
    report = ValidationReport(source=source)
    for c in table.columns:
        col = table[c]
        if c == "patient_id":
            continue
        num = (
            col.astype(float)
            if pd.api.types.is_numeric_dtype(col)
            else pd.to_numeric(col.astype("object"), errors="coerce").astype(float)
        )
        if not num.notna().any():
            continue
        for i in np.flatnonzero(((num.isna() & col.notna()) | np.isinf(num)).to_numpy()):
            pid = _str_or_none(table["patient_id"].iloc[i])
            expected = "a finite number (empty if missing)"
            report.add(Problem(int(i) + 1, pid, str(c), col.iloc[i], expected))
    if report:
        raise DataValidationError(
            report, hint="correct the listed cells (decimal point, no units or words)"
        )


def _str_or_none(v: object) -> str | None:
    return None if pd.isna(v) else str(v)


def join_feature_tables(
    clinical: pd.DataFrame, tables: Mapping[str, pd.DataFrame] | None = None
) -> pd.DataFrame:
    """Left-join per-patient image feature tables onto the clinical table.

    Parameters
    ----------
    clinical : DataFrame
        Canonical table with ``patient_id``.
    tables : mapping of prefix → DataFrame, optional
        Each table has ``patient_id`` and numeric feature columns; the prefix (one of
        :data:`IMAGE_PREFIXES`) is added to columns that do not already carry it.

    Returns
    -------
    DataFrame
        Same rows and order as ``clinical``; patients absent from a table get NaN.

    Raises
    ------
    ModelError
        When a table has no or duplicated ``patient_id`` values.
    DataValidationError
        When a feature column holding numbers also holds text cells.
    """
    out = clinical.copy()
    for prefix, table in (tables or {}).items():
        if prefix not in IMAGE_PREFIXES:
            raise ModelError(
                f"unknown image feature prefix {prefix!r}",
                hint=f"use one of {', '.join(IMAGE_PREFIXES)}",
            )
        if "patient_id" not in table.columns:
            raise ModelError(
                f"the {IMAGE_PREFIXES[prefix]} table has no 'patient_id' column",
                hint="key every feature table by patient_id",
            )
        if table["patient_id"].duplicated().any():
            dup = table.loc[table["patient_id"].duplicated(), "patient_id"].head(3).tolist()
            raise ModelError(
                f"the {IMAGE_PREFIXES[prefix]} table has duplicated patient_id values, e.g. {dup}",
                hint="aggregate to one row per patient before joining",
            )
        _check_numeric_cells(table, f"the {IMAGE_PREFIXES[prefix]} table")
        feats = table.set_index("patient_id")
        feats = feats.rename(
            columns={c: f"{prefix}{c}" for c in feats.columns if not str(c).startswith(prefix)}
        )
        # ids as text on both sides: 00123 read as a number must not crash or mismatch
        feats.index = feats.index.astype(str)
        key = clinical["patient_id"].astype(str)
        if len(feats) and len(key) and not key.isin(feats.index).any():
            raise ModelError(
                f"none of the {len(feats)} patient_id values of the {IMAGE_PREFIXES[prefix]} "
                f"table is in the clinical table (e.g. {feats.index[0]!r} there, "
                f"{key.iloc[0]!r} in the clinical table)",
                hint="use the same patient identifiers in every table, leading zeros included",
            )
        joined = feats.reindex(key.to_numpy())
        joined.index = out.index
        out = out.join(joined)
    out.index = clinical.index
    return out


def _group_of(kind: str, spec: object) -> str:
    if kind == "spec":
        return spec.group  # type: ignore[attr-defined]
    if kind == "alt":
        return "clinical"
    return next(p for p in IMAGE_PREFIXES if str(spec).startswith(p))


class FeatureAssembler(TransformerMixin, BaseEstimator):
    """Turn the wide patient table into a numeric, imputed, standardised matrix.

    Parameters
    ----------
    stage : {"pre", "post", "benefit"}
        Which clinical inputs to use (:data:`STAGE_INPUTS`).
    image_prefixes : tuple of str or None
        Image feature prefixes to use; ``None`` uses every prefix of the stage's
        modalities (PRE: MRI; POST/benefit: MRI and WSI). ``()`` = clinical only.
    min_observed : float
        A column observed in fewer than this fraction of rows counts as lacking.
    standardize : bool
        Centre and scale features (training mean/sd).

    Attributes
    ----------
    feature_names_out_ : list of str
    lacking_ : LackingReport
    """

    def __init__(
        self,
        stage: str = "pre",
        image_prefixes: tuple[str, ...] | None = None,
        min_observed: float = 0.05,
        standardize: bool = True,
    ) -> None:
        self.stage = stage
        self.image_prefixes = image_prefixes
        self.min_observed = min_observed
        self.standardize = standardize

    # -- helpers ---------------------------------------------------------------------
    def _prefixes(self) -> tuple[str, ...]:
        if self.image_prefixes is not None:
            return tuple(self.image_prefixes)
        mods = _STAGE_MODALITIES[self.stage]
        return tuple(p for m in mods for p in IMAGE_MODALITIES[m])

    def _observed(self, X: pd.DataFrame, col: str) -> bool:
        return col in X.columns and X[col].notna().mean() >= self.min_observed

    def _raw(self, X: pd.DataFrame) -> pd.DataFrame:
        """Un-imputed feature values (NaN where missing) for the fitted feature plan."""
        cols: dict[str, pd.Series] = {}
        nan = pd.Series(np.nan, index=X.index)
        for name, (kind, spec_or_col) in self._plan_.items():
            if kind == "spec":
                s: InputSpec = spec_or_col
                cols[name] = s.transform(X[s.column]) if s.column in X.columns else nan
            elif kind == "alt":
                cols[name] = _bool(X[spec_or_col]) if spec_or_col in X.columns else nan
            else:
                cols[name] = _num(X[spec_or_col]) if spec_or_col in X.columns else nan
        return pd.DataFrame(cols, index=X.index).astype(float)

    def _impute(self, X: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
        out = raw.copy()
        for name, (alt, by_cat) in self._conditional_.items():
            if alt not in X.columns:
                continue
            cat = _bool(X[alt])
            for value, med in by_cat.items():
                fill = out[name].isna() & (cat == value)
                out.loc[fill, name] = med
        return out.fillna(self.medians_)

    # -- sklearn API -----------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y=None) -> FeatureAssembler:
        """Learn the feature plan, imputation medians and scaling from ``X``."""
        if not isinstance(X, pd.DataFrame):
            raise ModelError(
                f"models need a DataFrame of canonical columns, got {type(X).__name__}",
                hint="pass the canonical clinical table (joined with image feature tables)",
            )
        if self.stage not in STAGE_INPUTS:
            raise ModelError(f"unknown stage {self.stage!r}", hint="use 'pre', 'post' or 'benefit'")
        lacking = LackingReport()
        plan: dict[str, tuple[str, object]] = {}
        conditional: dict[str, tuple[str, dict[float, float]]] = {}
        for s in STAGE_INPUTS[self.stage]:
            if self._observed(X, s.column):
                plan[s.feature] = ("spec", s)
                if s.alternative and s.alternative in X.columns:
                    conditional[s.feature] = (s.alternative, {})
            elif s.alternative and self._observed(X, s.alternative):
                plan[s.alternative] = ("alt", s.alternative)
                lacking.substitutions[s.column] = s.alternative
            elif s.column not in lacking.missing_inputs:
                lacking.missing_inputs.append(s.column)
        # aetiology gives two features; report it once
        prefixes = self._prefixes()
        for prefix in prefixes:
            for c in X.columns:
                if str(c).startswith(prefix) and c not in QC_COLUMNS and self._observed(X, c):
                    if pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]):
                        plan[str(c)] = ("image", c)
        mods = (
            _STAGE_MODALITIES[self.stage]
            if self.image_prefixes is None
            else tuple(m for m, ps in IMAGE_MODALITIES.items() if set(ps) & set(prefixes))
        )
        for m in mods:
            if not any(str(f).startswith(IMAGE_MODALITIES[m]) for f in plan):
                lacking.missing_modalities.append(m)
        if not plan:
            report = ValidationReport(source="model inputs")
            report.add(
                Problem(None, None, "(all)", "(no usable column)", "at least one model input")
            )
            raise DataValidationError(
                report, hint="check that the table uses canonical column names"
            )
        self._plan_ = plan
        raw = self._raw(X)
        self.medians_ = raw.median().fillna(0.0)
        for name, (alt, by_cat) in conditional.items():
            cat = _bool(X[alt])
            for value in (0.0, 1.0):
                vals = raw.loc[cat == value, name].dropna()
                if len(vals):
                    by_cat[value] = float(vals.median())
        self._conditional_ = conditional
        lacking.row_missing_fraction = {k: float(v) for k, v in raw.isna().mean().items()}
        filled = self._impute(X, raw)
        self.mean_ = filled.mean() if self.standardize else filled.mean() * 0.0
        sd = filled.std(ddof=0) if self.standardize else filled.std() * 0.0 + 1.0
        self.scale_ = sd.where(sd > 1e-12, 1.0)
        self.feature_names_out_ = list(plan)
        self.feature_groups_ = {name: _group_of(kind, spec) for name, (kind, spec) in plan.items()}
        self.lacking_ = lacking
        if lacking:
            log.info("model inputs: %s", lacking.summary())
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "_plan_"):
            from hccstrat.exceptions import NotFittedError

            raise NotFittedError("the feature assembler is not fitted", hint="call fit first")

    def lacking_at_predict(self, X: pd.DataFrame) -> LackingReport:
        """Which fitted inputs are absent from ``X`` (they will be imputed)."""
        self._check_fitted()
        rep = LackingReport()
        raw = self._raw(X)
        for kind, spec in self._plan_.values():
            col = spec.column if kind == "spec" else spec
            if col not in X.columns:
                if kind == "image":
                    continue
                rep.missing_inputs.append(str(col))
        for m, ps in IMAGE_MODALITIES.items():
            used = [n for n in self._plan_ if n.startswith(ps)]
            if used and raw[used].isna().all(axis=None):
                rep.missing_modalities.append(m)
        rep.row_missing_fraction = {k: float(v) for k, v in raw.isna().mean().items()}
        return rep

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Numeric feature frame (imputed, standardised) with ``feature_names_out_``."""
        self._check_fitted()
        if not isinstance(X, pd.DataFrame):
            raise ModelError(f"expected a DataFrame, got {type(X).__name__}")
        filled = self._impute(X, self._raw(X))
        return ((filled - self.mean_) / self.scale_)[self.feature_names_out_]

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the output features."""
        self._check_fitted()
        return np.asarray(self.feature_names_out_, dtype=object)
