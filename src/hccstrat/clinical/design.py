"""Routine clinical covariates as a numeric design matrix.

Used by the clinical Cox baseline of the demo and by the federated examples: one
place that says which routine pre- and post-operative variables a clinical-only
model sees and how they are coded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["clinical_design_matrix"]


def clinical_design_matrix(clinical: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Routine pre- and post-operative clinical covariates as a numeric matrix.

    Missing values are imputed with the column median (numbers) or the mode
    (indicators); the demo's synthetic data has few.
    """
    X = pd.DataFrame(index=clinical.index)
    X["age"] = clinical["age"].astype(float)
    X["male"] = clinical["sex"].eq("M").astype(float)
    X["log_afp"] = np.log10(clinical["afp_ng_ml"].astype(float).clip(lower=1))
    X["size_cm"] = clinical["tumour_size_cm"].astype(float)
    X["multiple"] = clinical["tumour_number"].astype(float).gt(1).astype(float)
    X["albi"] = scores["albi_score"].astype(float)
    X["cirrhosis"] = clinical["cirrhosis"].astype(float)
    X["mvi"] = clinical["mvi"].astype(float)
    X["satellite"] = clinical["satellite_nodules"].astype(float)
    X["grade_3_4"] = clinical["edmondson_grade"].astype(float).ge(3).astype(float)
    X["r1"] = clinical["margin_status"].eq("R1").astype(float)
    X["no_capsule"] = clinical["capsule_pathology"].ne("complete").astype(float)
    return X.fillna(X.median())
