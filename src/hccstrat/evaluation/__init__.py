"""Evaluation layer of hccstrat: metrics, uncertainty, treatment benefit, staged validation.

Every metric takes a survival target (``hccstrat.survival.make_surv``; months) and
predictions; most accept ``weights`` of shape ``(B, n)`` to evaluate ``B`` bootstrap
resamples in one call.
"""

from hccstrat.evaluation._core import risk_at, risk_score, survival_at
from hccstrat.evaluation.benefit import (
    benefit_calibration,
    c_for_benefit,
    policy_value,
    qini_curve,
)
from hccstrat.evaluation.bootstrap import (
    BootstrapResult,
    bootstrap,
    default_metrics,
    paired_bootstrap,
    resample_weights,
)
from hccstrat.evaluation.brier import brier_score, integrated_brier_score, scaled_brier
from hccstrat.evaluation.calibration import (
    calibration_curve,
    calibration_in_the_large,
    calibration_slope,
    calibration_table,
)
from hccstrat.evaluation.conformal import MondrianConformal
from hccstrat.evaluation.decision import classification_at, decision_curve, net_benefit
from hccstrat.evaluation.discrimination import cumulative_dynamic_auc, harrell_c, uno_c
from hccstrat.evaluation.drift import input_drift, psi, rolling_performance
from hccstrat.evaluation.meta import dersimonian_laird, pool_metric
from hccstrat.evaluation.performance import PerformanceResult, assess
from hccstrat.evaluation.recalibration import Recalibrator
from hccstrat.evaluation.sample_size import development_sample_size, validation_sample_size
from hccstrat.evaluation.subgroups import subgroup_performance
from hccstrat.evaluation.validation import (
    StageSpec,
    ValidationPlan,
    ValidationResults,
    run_plan,
)

__all__ = [
    "BootstrapResult",
    "MondrianConformal",
    "PerformanceResult",
    "Recalibrator",
    "StageSpec",
    "ValidationPlan",
    "ValidationResults",
    "assess",
    "benefit_calibration",
    "bootstrap",
    "brier_score",
    "c_for_benefit",
    "calibration_curve",
    "calibration_in_the_large",
    "calibration_slope",
    "calibration_table",
    "classification_at",
    "cumulative_dynamic_auc",
    "decision_curve",
    "default_metrics",
    "dersimonian_laird",
    "development_sample_size",
    "harrell_c",
    "input_drift",
    "integrated_brier_score",
    "net_benefit",
    "paired_bootstrap",
    "policy_value",
    "pool_metric",
    "psi",
    "qini_curve",
    "resample_weights",
    "risk_at",
    "risk_score",
    "rolling_performance",
    "run_plan",
    "scaled_brier",
    "subgroup_performance",
    "survival_at",
    "uno_c",
    "validation_sample_size",
]
