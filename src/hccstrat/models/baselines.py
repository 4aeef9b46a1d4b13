"""Baseline models: Cox, random survival forest, gradient-boosted Cox, BCLC, ERASL.

The learnt baselines share the feature assembly of the PRE/POST models
(``stage`` picks the clinical inputs; ``image_prefixes=()`` makes them clinical-only,
the default). The score baselines turn a published staging system into a risk score
(higher = worse) and fit a one-variable Cox model on it, so they also give survival
probabilities and can be compared with every other model on the same footing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from hccstrat.exceptions import ModelError, NotFittedError
from hccstrat.models._base import (
    FeatureSurvivalModel,
    check_target,
    concordance,
    make_survival_learner,
    survival_at,
    training_summary,
)

__all__ = ["BCLCBaseline", "CoxBaseline", "ERASLBaseline", "GBCoxBaseline", "RSFBaseline"]


class CoxBaseline(FeatureSurvivalModel):
    """Penalised Cox proportional-hazards model (elastic net; ``l1_ratio=0`` = ridge).

    Parameters
    ----------
    stage : {"pre", "post"}
        Clinical inputs to use.
    image_prefixes : tuple of str or None
        Image feature prefixes; ``()`` (default) = clinical only.
    alpha, l1_ratio : float
        Penalty strength and elastic-net mixing of
        :class:`sksurv.linear_model.CoxnetSurvivalAnalysis`.
    """

    def __init__(
        self, stage: str = "pre", image_prefixes=(), alpha: float = 0.02, l1_ratio: float = 0.5
    ):
        self.stage = stage
        self.image_prefixes = image_prefixes
        self.alpha = alpha
        self.l1_ratio = l1_ratio

    def _make_learner(self):
        return make_survival_learner("coxnet", alpha=self.alpha, l1_ratio=self.l1_ratio)


class RSFBaseline(FeatureSurvivalModel):
    """Random survival forest (:class:`sksurv.ensemble.RandomSurvivalForest`)."""

    def __init__(
        self,
        stage: str = "pre",
        image_prefixes=(),
        n_estimators: int = 200,
        min_samples_leaf: int = 15,
        random_state=0,
    ):
        self.stage = stage
        self.image_prefixes = image_prefixes
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def _make_learner(self):
        return make_survival_learner(
            "rsf",
            n_estimators=self.n_estimators,
            min_samples_leaf=self.min_samples_leaf,
            random_state=self.random_state,
        )


class GBCoxBaseline(FeatureSurvivalModel):
    """Gradient-boosted Cox model (:class:`sksurv.ensemble.GradientBoostingSurvivalAnalysis`)."""

    def __init__(
        self,
        stage: str = "pre",
        image_prefixes=(),
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        max_depth: int = 2,
        subsample: float = 0.8,
        random_state=0,
    ):
        self.stage = stage
        self.image_prefixes = image_prefixes
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.random_state = random_state

    def _make_learner(self):
        return make_survival_learner(
            "gbsa",
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            subsample=self.subsample,
            random_state=self.random_state,
        )


_BCLC_ORDER = {"0": 0.0, "A": 1.0, "B": 2.0, "C": 3.0, "D": 4.0}


def _scores(X: pd.DataFrame) -> pd.DataFrame:
    try:
        from hccstrat.clinical.scores import compute_scores
    except ImportError as err:  # pragma: no cover - depends on the clinical module
        raise ModelError(
            "hccstrat.clinical.scores is not available, so BCLC/ERASL cannot be computed",
            hint="install the full hccstrat package",
        ) from err
    return compute_scores(X)


def _first_column(df: pd.DataFrame, names: tuple[str, ...]) -> pd.Series | None:
    for n in names:
        if n in df.columns and df[n].notna().any():
            return df[n]
    return None


class _ScoreBaseline(BaseEstimator):
    """Published score as a risk, with a one-variable Cox model for survival."""

    def _raw_score(self, X: pd.DataFrame) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, X: pd.DataFrame, y):
        """Fit the one-variable Cox model of the score (missing scores: median)."""
        check_target(y, len(X))
        s = self._raw_score(X)
        if np.isnan(s).all():
            raise ModelError(
                f"{type(self).__name__}: the score could not be computed for any patient",
                hint="provide the inputs of the score (see hccstrat.clinical.scores)",
            )
        self.median_ = float(np.nanmedian(s))
        self.missing_fraction_ = float(np.isnan(s).mean())
        self.learner_ = make_survival_learner("cox", alpha=1e-4).fit(
            np.nan_to_num(s, nan=self.median_)[:, None], y
        )
        self.training_summary_ = training_summary(X, y)
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "learner_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet", hint="call fit first"
            )

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Score (higher = worse); missing scores get the training median."""
        self._check_fitted()
        return np.nan_to_num(self._raw_score(X), nan=self.median_)

    def predict_survival_function(self, X: pd.DataFrame, times) -> np.ndarray:
        """Survival probabilities [n, len(times)] from the one-variable Cox model."""
        self._check_fitted()
        return survival_at(
            self.learner_, self.predict(X)[:, None], np.atleast_1d(np.asarray(times, float))
        )

    def predict_event_probability(self, X: pd.DataFrame, horizon: float = 24.0) -> np.ndarray:
        """Probability of the event by ``horizon`` months."""
        return 1.0 - self.predict_survival_function(X, [horizon])[:, 0]

    def score(self, X: pd.DataFrame, y) -> float:
        """Harrell's C-index."""
        return concordance(y, self.predict(X))


class BCLCBaseline(_ScoreBaseline):
    """BCLC stage (0 < A < B < C < D) as an ordinal risk score.

    Computed by :func:`hccstrat.clinical.scores.compute_scores`; when it cannot be
    computed for a patient the centre's recorded stage (``bclc_recorded``) is used.
    """

    def __init__(self) -> None:
        pass

    def _raw_score(self, X: pd.DataFrame) -> np.ndarray:
        stage = None
        try:
            stage = _first_column(_scores(X), ("bclc_stage", "bclc"))
        except ModelError:
            if "bclc_recorded" not in X.columns:
                raise
        if stage is None:
            stage = pd.Series(pd.NA, index=X.index)
        if "bclc_recorded" in X.columns:
            stage = stage.astype("object").where(stage.notna(), X["bclc_recorded"].astype("object"))
        return stage.astype("string").map(_BCLC_ORDER).astype(float).to_numpy()


class ERASLBaseline(_ScoreBaseline):
    """ERASL-pre or ERASL-post score (Chan et al., J Hepatol 2018) as a risk score.

    Parameters
    ----------
    stage : {"pre", "post"}
        Which ERASL model.
    """

    def __init__(self, stage: str = "pre") -> None:
        self.stage = stage

    def _raw_score(self, X: pd.DataFrame) -> np.ndarray:
        if self.stage not in ("pre", "post"):
            raise ModelError(f"unknown ERASL stage {self.stage!r}", hint="use 'pre' or 'post'")
        sc = _scores(X)
        col = _first_column(sc, (f"erasl_{self.stage}_score", f"erasl_{self.stage}"))
        if col is None:
            raise ModelError(
                f"compute_scores returned no ERASL-{self.stage} score",
                hint=f"provide the ERASL-{self.stage} inputs (see hccstrat.clinical.scores)",
            )
        return pd.to_numeric(col, errors="coerce").astype(float).to_numpy()
