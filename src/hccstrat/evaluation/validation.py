"""Staged validation plans, mirroring the study design, and their results.

A :class:`ValidationPlan` (YAML-describable) lists stages run on a table of
predictions (one row per patient: ``time``, ``event``, predicted ``risk`` by the
horizon, ``centre``, ``cohort`` label, date of surgery, subgroup columns):

- ``development`` — apparent performance on the development cohort;
- ``internal`` — held-out random split (see :func:`split_internal`);
- ``external`` — per centre and pooled (cluster bootstrap by centre), with
  DerSimonian–Laird meta-analysis of C-index, O/E and calibration slope;
- ``recalibration`` — recalibrate (intercept, slope, isotonic) on a random half of an
  external cohort and re-validate on the other half;
- ``large_external`` — pooled performance on a large cohort (with meta-analysis);
- ``prospective`` — model vs clinician agreement (kappa, outcomes by concordance) and
  drift over calendar time (rolling performance, input drift tests).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from hccstrat.evaluation._pred_checks import checked_predictions
from hccstrat.evaluation.drift import input_drift, rolling_performance
from hccstrat.evaluation.meta import pool_metric
from hccstrat.evaluation.performance import assess
from hccstrat.evaluation.recalibration import Recalibrator
from hccstrat.evaluation.subgroups import subgroup_performance
from hccstrat.exceptions import ConfigError, DataValidationError, Problem, ValidationReport
from hccstrat.io.atomic import atomic_write
from hccstrat.survival import make_surv

__all__ = [
    "StageKind",
    "StageResult",
    "StageSpec",
    "ValidationPlan",
    "ValidationResults",
    "run_plan",
    "split_internal",
]

log = logging.getLogger(__name__)

StageKind = Literal[
    "development", "internal", "external", "recalibration", "large_external", "prospective"
]
_KINDS = ("development", "internal", "external", "recalibration", "large_external", "prospective")


@dataclass
class StageSpec:
    """One stage of a validation plan.

    Attributes
    ----------
    name : str
    kind : StageKind
    cohort : str or None
        Value of the plan's cohort column selecting the stage's rows (default: ``name``).
    centres : list of str, optional
        Restrict to these centres.
    min_centre_n : int
        Centres with fewer patients are pooled only (external stages).
    recalibration : list of str
        Methods for ``recalibration`` stages.
    window_months, step_months : int
        Rolling windows for ``prospective`` stages.
    clinician_column : str, optional
        Clinician's high-risk decision (bool) for ``prospective`` stages.
    drift_columns : list of str
        Inputs tested for drift against the development cohort.
    """

    name: str
    kind: StageKind
    cohort: str | None = None
    centres: list[str] | None = None
    min_centre_n: int = 50
    recalibration: list[str] = field(default_factory=lambda: ["intercept", "slope", "isotonic"])
    window_months: int = 12
    step_months: int = 3
    clinician_column: str | None = None
    drift_columns: list[str] = field(default_factory=list)


@dataclass
class ValidationPlan:
    """A staged validation plan (load from YAML with :meth:`from_yaml`)."""

    name: str = "validation"
    data: str | None = None
    horizon: float = 24.0
    threshold: float = 0.5
    n_bootstrap: int = 1000
    seed: int = 0
    time_column: str = "time"
    event_column: str = "event"
    risk_column: str = "risk"
    centre_column: str = "centre"
    cohort_column: str = "cohort"
    date_column: str = "surgery_date"
    subgroups: list[str] = field(
        default_factory=lambda: ["sex", "age_band", "aetiology", "centre", "bclc_stage"]
    )
    comparators: list[str] = field(default_factory=list)
    stages: list[StageSpec] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ValidationPlan:
        """Build from a dict (as read from YAML), checking names and kinds."""
        if not isinstance(d, dict):
            raise ConfigError(
                f"a validation plan must be a mapping of keys, got {type(d).__name__}",
                hint="write 'key: value' lines (name, data, n_bootstrap, stages, ...)",
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(
                f"unknown plan keys: {sorted(unknown)}", hint=f"allowed: {sorted(known)}"
            )
        for key, kind in (("horizon", float), ("threshold", float), ("n_bootstrap", int),
                          ("seed", int)):
            v = d.get(key, 0)
            if isinstance(v, bool) or not isinstance(v, (int, float) if kind is float else int):
                raise ConfigError(f"plan key {key!r} is {v!r}", hint=f"give {key} as a number")
        for key, ok, allowed in (
            ("horizon", lambda v: v > 0, "months > 0"),
            ("threshold", lambda v: 0 < v < 1, "a risk between 0 and 1"),
            ("n_bootstrap", lambda v: v >= 0, "a count >= 0"),
        ):
            if key in d and not ok(d[key]):
                raise ConfigError(f"plan key {key!r} is {d[key]!r}", hint=f"give {allowed}")
        stages = []
        skeys = {f.name for f in dataclasses.fields(StageSpec)}
        for i, s in enumerate(d.get("stages", [])):
            bad = set(s) - skeys
            if bad or s.get("kind") not in _KINDS or "name" not in s:
                raise ConfigError(
                    f"stage {i + 1} is invalid ({s})",
                    hint=f"each stage needs a name and kind in {_KINDS}; keys {sorted(skeys)}",
                )
            stages.append(StageSpec(**s))
        return cls(**{**{k: v for k, v in d.items() if k != "stages"}, "stages": stages})

    @classmethod
    def from_yaml(cls, path: str | Path) -> ValidationPlan:
        """Read a plan from a YAML file; ``data`` is resolved relative to the file."""
        import yaml

        path = Path(path)
        try:
            d = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            from hccstrat.exceptions import InputFileError

            raise InputFileError(
                f"cannot read plan {path}: {err}", hint="check the path and YAML syntax"
            ) from err
        plan = cls.from_dict(d)
        if plan.data and not Path(plan.data).is_absolute():
            plan.data = str((path.parent / plan.data).resolve())
        return plan

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (the YAML form)."""
        return dataclasses.asdict(self)


@dataclass
class StageResult:
    """Results of one stage: performance objects plus stage-specific tables (dict form)."""

    name: str
    kind: str
    performance: dict[str, Any] = field(default_factory=dict)
    meta_analysis: dict[str, Any] = field(default_factory=dict)
    recalibration: list[dict] = field(default_factory=list)
    drift: dict[str, Any] = field(default_factory=dict)
    agreement: dict[str, Any] = field(default_factory=dict)
    subgroups: list[dict] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        out = dict(self.__dict__)
        out["performance"] = {
            k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in self.performance.items()
        }
        return out


@dataclass
class ValidationResults:
    """All stage results of a plan, with run metadata."""

    plan: ValidationPlan
    stages: list[StageResult]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable with :func:`json.dumps` ``default=str``)."""
        return {
            "plan": self.plan.to_dict(),
            "metadata": self.metadata,
            "stages": [s.to_dict() for s in self.stages],
        }

    def save_json(self, path: str | Path) -> Path:
        """Write the results (atomic)."""
        from hccstrat.reports.html import _json_default

        path = Path(path)
        with atomic_write(path) as fh:
            json.dump(self.to_dict(), fh, indent=1, default=_json_default)
        return path


def split_internal(n: int, *, test_size: float = 0.25, seed: int = 0, stratify=None) -> np.ndarray:
    """Boolean mask of a random internal-validation split (stratified when given)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    _, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=stratify)
    mask = np.zeros(n, bool)
    mask[test] = True
    return mask


def _target(df: pd.DataFrame, plan: ValidationPlan) -> tuple[np.ndarray, np.ndarray]:
    report = ValidationReport(source="predictions table")
    for c in (plan.time_column, plan.event_column, plan.risk_column):
        if c not in df.columns:
            report.add(Problem(None, None, c, "(missing column)", "a column named in the plan"))
    if report:
        raise DataValidationError(report, hint="rename the columns or set *_column in the plan")
    y = make_surv(
        df[plan.event_column].astype(bool).to_numpy(), df[plan.time_column].to_numpy(float)
    )
    return y, df[plan.risk_column].to_numpy(float)


def _assess(df, plan, name, seed, clusters=None):
    y, p = _target(df, plan)
    comp = {c: df[c].to_numpy(float) for c in plan.comparators if c in df}
    return assess(
        y,
        p,
        name=name,
        horizon=plan.horizon,
        threshold=plan.threshold,
        n_bootstrap=plan.n_bootstrap,
        seed=seed,
        clusters=clusters,
        comparators=comp,
    )


def _meta(perfs: dict) -> dict:
    out = {}
    for metric, scale in (
        ("harrell_c", "logit"),
        ("oe_ratio", "log"),
        ("calibration_slope", "identity"),
    ):
        est = [p.metrics[metric]["estimate"] for p in perfs.values()]
        se = [p.metrics[metric]["se"] for p in perfs.values()]
        try:
            out[metric] = pool_metric(est, se, scale=scale).to_dict()
        except ConfigError as err:
            out[metric] = {"error": str(err)}
    return out


def _external(df, plan, spec, res: StageResult, seed):
    cc = plan.centre_column
    counts = df[cc].value_counts() if cc in df else pd.Series(dtype=int)
    for centre, n in counts.sort_index().items():
        if n >= spec.min_centre_n:
            res.performance[f"centre {centre}"] = _assess(
                df[df[cc] == centre], plan, str(centre), seed
            )
    clusters = df[cc].to_numpy() if cc in df and counts.size >= 2 else None
    res.performance["pooled"] = _assess(df, plan, "pooled", seed, clusters=clusters)
    per_centre = {k: v for k, v in res.performance.items() if k.startswith("centre ")}
    if len(per_centre) >= 2:
        res.meta_analysis = _meta(per_centre)


def _recalibration(df, plan, spec, res: StageResult, seed):
    y, p = _target(df, plan)
    test = split_internal(len(df), test_size=0.5, seed=seed, stratify=y["event"])
    res.performance["before"] = _assess(df[test], plan, "original", seed)
    for method in spec.recalibration:
        rc = Recalibrator(method, plan.horizon).fit(p[~test], y[~test])
        new = df[test].copy()
        new[plan.risk_column] = rc.transform(p[test])
        perf = _assess(new, plan, method, seed)
        res.performance[method] = perf
        res.recalibration.append(
            {
                "method": method,
                "slope": getattr(rc, "slope_", None),
                "baseline_cumhaz": getattr(rc, "h0_", None),
                "oe_ratio": perf.estimate("oe_ratio"),
                "calibration_slope": perf.estimate("calibration_slope"),
                "ici": perf.calibration.get("ici"),
                "harrell_c": perf.estimate("harrell_c"),
            }
        )


def _prospective(df, plan, spec, res: StageResult, seed, reference: pd.DataFrame | None):
    from sklearn.metrics import cohen_kappa_score

    from hccstrat.evaluation._core import km_at

    y, p = _target(df, plan)
    res.performance["overall"] = _assess(df, plan, "prospective", seed)
    if plan.date_column in df:
        roll = rolling_performance(
            y,
            p,
            df[plan.date_column],
            horizon=plan.horizon,
            window_months=spec.window_months,
            step_months=spec.step_months,
        )
        res.drift["rolling"] = roll.assign(
            window_start=roll["window_start"].astype(str), window_end=roll["window_end"].astype(str)
        ).to_dict("records")
    cols = [c for c in spec.drift_columns if c in df]
    if reference is not None and cols:
        res.drift["inputs"] = input_drift(reference, df, cols).to_dict("records")
    if spec.clinician_column and spec.clinician_column in df:
        model_high = p >= plan.threshold
        clin = df[spec.clinician_column].astype(bool).to_numpy()
        groups = {}
        for mh in (True, False):
            for ch in (True, False):
                m = (model_high == mh) & (clin == ch)
                if m.sum() >= 5:
                    groups[
                        f"model {'high' if mh else 'low'} / clinician {'high' if ch else 'low'}"
                    ] = {
                        "n": int(m.sum()),
                        "risk_at_horizon": float(
                            1 - km_at(y, [plan.horizon], m[None].astype(float))[0, 0]
                        ),
                    }
        res.agreement = {
            "agreement": float((model_high == clin).mean()),
            "kappa": float(cohen_kappa_score(model_high, clin)),
            "n": len(clin),
            "outcomes_by_concordance": groups,
        }


def run_plan(
    plan: ValidationPlan,
    data: pd.DataFrame | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> ValidationResults:
    """Run every stage of ``plan`` on a predictions table.

    A failing stage is recorded (``StageResult.error``) and the others go on.
    """
    if data is None:
        if not plan.data:
            raise ConfigError(
                "no data: the plan has no 'data' path and none was passed",
                hint="set data: predictions.csv in the plan",
            )
        from hccstrat.exceptions import InputFileError

        path = Path(plan.data)
        try:
            data = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        except (OSError, ValueError) as err:
            raise InputFileError(
                f"cannot read predictions {path}: {err}",
                hint="give a CSV or parquet file with the plan's columns",
            ) from err
    data = checked_predictions(data, plan)
    results = []
    cohort = data[plan.cohort_column].astype(str) if plan.cohort_column in data else None
    reference = data[cohort == "development"] if cohort is not None else None
    for i, spec in enumerate(plan.stages):
        if progress:
            progress(f"validation stage {spec.name} ({spec.kind})")
        seed = plan.seed + i
        df = data if cohort is None else data[cohort == (spec.cohort or spec.name)]
        if spec.centres:
            df = df[df[plan.centre_column].astype(str).isin([str(c) for c in spec.centres])]
        res = StageResult(spec.name, spec.kind)
        try:
            if len(df) == 0:
                raise ConfigError(
                    f"stage {spec.name!r} selects no rows",
                    hint=f"check '{plan.cohort_column}' values and centres",
                )
            if spec.kind in ("development", "internal"):
                res.performance[spec.kind] = _assess(df, plan, spec.name, seed)
            elif spec.kind in ("external", "large_external"):
                _external(df, plan, spec, res, seed)
            elif spec.kind == "recalibration":
                _recalibration(df, plan, spec, res, seed)
            else:
                _prospective(
                    df,
                    plan,
                    spec,
                    res,
                    seed,
                    reference if reference is not None and len(reference) else None,
                )
            if spec.kind in ("internal", "external", "large_external") and plan.subgroups:
                y, p = _target(df, plan)
                res.subgroups = subgroup_performance(
                    y,
                    p,
                    df,
                    plan.subgroups,
                    horizon=plan.horizon,
                    seed=seed,
                    n_resamples=min(200, plan.n_bootstrap),
                ).to_dict("records")
        except Exception as err:  # recorded; the other stages go on
            log.warning("stage %s failed: %s", spec.name, err)
            res.error = f"{type(err).__name__}: {err}"
        results.append(res)
    return ValidationResults(plan, results, {"n_rows": len(data), "seed": plan.seed})
