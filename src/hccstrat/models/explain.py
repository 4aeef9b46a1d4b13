"""Per-patient explanations: the factors that contributed most to a prediction.

Methods, by model:

- linear Cox models (``coxnet``/``cox`` base): exact contributions
  ``coef × standardised value`` (relative to the average training patient);
- tree and forest models: SHAP values (model-agnostic permutation explainer on the
  risk score, ``pip install shap``); without SHAP, *ablation* contributions (the
  change in risk when the feature is set to its training mean);
- :class:`~hccstrat.models.deep_pre.DeepPreModel`: gradient × input for clinical
  features, and a voxel saliency map for the MRI crop (:func:`volume_saliency`).

Contributions are on the scale of the model's risk score (log-hazard for Cox).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hccstrat.exceptions import ModelError

__all__ = ["contributions", "top_factors", "volume_saliency"]

log = logging.getLogger(__name__)


def _linear_coef(learner) -> np.ndarray | None:
    coef = getattr(learner, "coef_", None)
    if coef is None:
        return None
    coef = np.asarray(coef)
    return coef[:, -1] if coef.ndim == 2 else coef


def contributions(
    model, X: pd.DataFrame, *, method: str = "auto", random_state: int = 0
) -> tuple[pd.DataFrame, str]:
    """Contribution of each feature to each patient's risk.

    Parameters
    ----------
    model : fitted hccstrat model
        Tabular PRE/POST/baseline model or DeepPreModel.
    X : DataFrame
        Patients to explain (same columns as for ``predict``).
    method : {"auto", "linear", "shap", "ablation"}
        ``auto``: linear for Cox, SHAP for others (ablation without shap).
    random_state : int
        Seed of the SHAP permutation explainer.

    Returns
    -------
    contributions : DataFrame
        Rows = patients, columns = features.
    method : str
        The method used.
    """
    from hccstrat.models.deep_pre import DeepPreModel

    if isinstance(model, DeepPreModel):
        return model.saliency(X)[1], "gradient"
    learner = getattr(model, "learner_", None)
    if learner is None or not hasattr(model, "transform_features"):
        raise ModelError(
            f"cannot explain a {type(model).__name__}",
            hint="explanations support the PRE/POST/baseline tabular models and DeepPreModel",
        )
    Z = model.transform_features(X)
    coef = _linear_coef(learner)
    if method in ("auto", "linear") and coef is not None:
        return Z * coef, "linear"
    if method == "linear":
        raise ModelError("method='linear' needs a linear (Cox) base model")

    def f(a: np.ndarray) -> np.ndarray:
        return np.asarray(learner.predict(a), float)

    if method in ("auto", "shap"):
        try:
            import shap
        except ImportError:
            if method == "shap":
                from hccstrat.exceptions import DependencyMissingError

                raise DependencyMissingError("shap", "explain") from None
            log.info("shap not installed: using ablation contributions")
        else:
            bg = np.zeros((1, Z.shape[1]))  # standardised features: the training mean
            explainer = shap.explainers.Permutation(
                f, shap.maskers.Independent(bg), seed=random_state
            )
            values = explainer(Z.to_numpy(), max_evals=2 * Z.shape[1] + 1, silent=True).values
            return pd.DataFrame(values, index=Z.index, columns=Z.columns), "shap"
    base = f(Z.to_numpy())
    out = pd.DataFrame(index=Z.index, columns=Z.columns, dtype=float)
    for j, col in enumerate(Z.columns):
        A = Z.to_numpy().copy()
        A[:, j] = 0.0
        out[col] = base - f(A)
    return out, "ablation"


def top_factors(model, X: pd.DataFrame, n_top: int = 5, **kwargs) -> pd.DataFrame:
    """The ``n_top`` factors of each patient, largest absolute contribution first.

    Returns
    -------
    DataFrame
        ``patient_id`` (or row index), ``rank``, ``feature``, ``contribution``,
        ``direction`` ("raises risk" / "lowers risk"), ``method``.
    """
    contrib, method = contributions(model, X, **kwargs)
    ids = X["patient_id"].to_numpy() if "patient_id" in X.columns else X.index.to_numpy()
    rows = []
    vals = contrib.to_numpy(float)
    for i in range(len(contrib)):
        order = np.argsort(-np.abs(vals[i]))[:n_top]
        for r, j in enumerate(order):
            rows.append(
                {
                    "patient_id": ids[i],
                    "rank": r + 1,
                    "feature": contrib.columns[j],
                    "contribution": float(vals[i, j]),
                    "direction": "raises risk" if vals[i, j] > 0 else "lowers risk",
                    "method": method,
                }
            )
    return pd.DataFrame(rows)


def volume_saliency(model, X: pd.DataFrame) -> np.ndarray:
    """Voxel saliency [n, 4, D, H, W] of a :class:`DeepPreModel` (|gradient| of the risk)."""
    from hccstrat.models.deep_pre import DeepPreModel

    if not isinstance(model, DeepPreModel):
        raise ModelError(
            "volume saliency needs a DeepPreModel",
            hint="radiomics-based models have no voxel-level map; use top_factors",
        )
    return model.saliency(X)[0]
