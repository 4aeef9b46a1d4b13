"""Prediction models: PRE, POST, treatment benefit, baselines; persistence, CV, explanations.

Every model follows the scikit-learn estimator contract, takes the wide patient
table (canonical clinical columns joined with image feature tables, see
:func:`join_feature_tables`) and a scikit-survival target, and reports which
inputs it lacked (``lacking_``).
"""

from __future__ import annotations

from hccstrat.models._features import FeatureAssembler, LackingReport, join_feature_tables
from hccstrat.models.baselines import (
    BCLCBaseline,
    CoxBaseline,
    ERASLBaseline,
    GBCoxBaseline,
    RSFBaseline,
)
from hccstrat.models.benefit import (
    ARMS,
    NO_RECOMMENDATION,
    BenefitPrediction,
    OverlapWarning,
    PolicyCheck,
    PolicyWarning,
    TreatmentBenefitModel,
    propensity_overlap,
)
from hccstrat.models.cv import LeaveOneCentreOut, PatientGroupKFold, cross_validate_model
from hccstrat.models.deep_pre import DeepPreModel
from hccstrat.models.explain import contributions, top_factors, volume_saliency
from hccstrat.models.operating import operating_characteristics, threshold_table
from hccstrat.models.persist import ModelCard, load_model, read_model_card, save_model
from hccstrat.models.post import PostModel
from hccstrat.models.pre import PreModel

__all__ = [
    "ARMS",
    "NO_RECOMMENDATION",
    "BCLCBaseline",
    "BenefitPrediction",
    "CoxBaseline",
    "DeepPreModel",
    "ERASLBaseline",
    "FeatureAssembler",
    "GBCoxBaseline",
    "LackingReport",
    "LeaveOneCentreOut",
    "ModelCard",
    "OverlapWarning",
    "PatientGroupKFold",
    "PolicyCheck",
    "PolicyWarning",
    "PostModel",
    "PreModel",
    "RSFBaseline",
    "TreatmentBenefitModel",
    "contributions",
    "cross_validate_model",
    "join_feature_tables",
    "load_model",
    "operating_characteristics",
    "propensity_overlap",
    "read_model_card",
    "save_model",
    "threshold_table",
    "top_factors",
    "volume_saliency",
]
