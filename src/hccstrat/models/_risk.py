"""Calibrated horizon-risk model shared by the PRE and POST models.

A survival base learner (penalised Cox, gradient-boosted Cox or a random survival
forest) is fitted on the assembled features; its probability of the event by the
horizon, 1 − S(horizon | x), is recalibrated on out-of-fold predictions
(:class:`~hccstrat.models.operating.HorizonCalibrator`) so the output score is a
calibrated probability in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from hccstrat.models._base import FeatureSurvivalModel, make_survival_learner, survival_at
from hccstrat.models.operating import HorizonCalibrator, operating_characteristics, threshold_table

__all__ = ["HorizonRiskModel", "ThresholdMixin"]


class ThresholdMixin:
    """``predict``, ``predict_high_risk`` and ``operating_characteristics`` from ``predict_score``.

    The host defines ``predict_score(X)``, ``threshold`` and ``horizon``.
    """

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The score (higher = higher risk); same as :meth:`predict_score`."""
        return self.predict_score(X)

    def predict_high_risk(self, X: pd.DataFrame, threshold: float | None = None) -> np.ndarray:
        """Boolean: score >= threshold (default: the model's ``threshold``)."""
        t = self.threshold if threshold is None else threshold
        return self.predict_score(X) >= t

    def operating_characteristics(self, X: pd.DataFrame, y, thresholds=None) -> pd.DataFrame:
        """Operating characteristics on validation data at the model threshold (and others).

        Returns one row per threshold (the model's own first) with sensitivity,
        specificity, PPV, NPV and the share classified high risk (IPCW-weighted).
        """
        score = self.predict_score(X)
        if thresholds is None:
            return pd.DataFrame(
                [
                    operating_characteristics(
                        score, y, threshold=self.threshold, horizon=self.horizon
                    )
                ]
            )
        ts = [self.threshold, *[t for t in thresholds if t != self.threshold]]
        return threshold_table(score, y, ts, horizon=self.horizon)


class HorizonRiskModel(ThresholdMixin, FeatureSurvivalModel):
    """Calibrated probability of the event within ``horizon`` months.

    Parameters
    ----------
    base : {"coxnet", "gbsa", "rsf", "cox"}
        Survival base learner.
    image_prefixes : tuple of str or None
        Image feature prefixes (``None`` = all of the stage's modalities, ``()`` = none).
    alpha, l1_ratio : float
        Elastic-net Cox penalty (``coxnet``/``cox``).
    n_estimators, learning_rate, max_depth, subsample : number
        Gradient boosting / forest settings.
    horizon : float
        Months (24 for aggressive recurrence).
    threshold : float
        High risk when the score is >= threshold.
    calibration : {"platt", "isotonic", "none"}
        Recalibration of the horizon probability.
    calibration_folds : int
        Folds for the out-of-fold predictions the calibrator is fitted on.
    random_state : int or None
        Seed.
    """

    def __init__(
        self,
        base: str = "coxnet",
        image_prefixes: tuple[str, ...] | None = None,
        alpha: float = 0.02,
        l1_ratio: float = 0.5,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        max_depth: int = 2,
        subsample: float = 0.8,
        horizon: float = 24.0,
        threshold: float = 0.5,
        calibration: str = "platt",
        calibration_folds: int = 3,
        random_state: int | None = 0,
    ) -> None:
        self.base = base
        self.image_prefixes = image_prefixes
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.horizon = horizon
        self.threshold = threshold
        self.calibration = calibration
        self.calibration_folds = calibration_folds
        self.random_state = random_state

    def _make_learner(self):
        return make_survival_learner(
            self.base,
            alpha=self.alpha,
            l1_ratio=self.l1_ratio,
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            subsample=self.subsample,
            random_state=self.random_state,
        )

    def fit(self, X: pd.DataFrame, y):
        """Fit the base learner and the calibrator (on out-of-fold predictions)."""
        from hccstrat.exceptions import ModelError

        if not 0.0 < float(self.threshold) < 1.0:
            raise ModelError(f"threshold must be in (0, 1), got {self.threshold}")
        Z = self._fit_features(X, y).to_numpy()
        self.learner_ = self._make_learner().fit(Z, y)
        raw = np.empty(len(y))
        h = np.array([self.horizon])
        if self.calibration != "none" and self.calibration_folds >= 2:
            folds = KFold(self.calibration_folds, shuffle=True, random_state=self.random_state)
            splits = list(folds.split(Z)) if len(y) >= self.calibration_folds else []
            if not splits or not all(y["event"][tr].any() for tr, _ in splits):
                # else a bare sklearn error ("n_splits=3 greater than", "all samples censored")
                raise ModelError(
                    f"{len(y)} patients with {int(y['event'].sum())} event(s) are too few for "
                    f"{self.calibration_folds}-fold calibration (each fold needs events)",
                    hint="train on more patients (a model needs tens of events, not a handful)",
                )
            for tr, te in splits:
                learner = self._make_learner().fit(Z[tr], y[tr])
                raw[te] = 1 - survival_at(learner, Z[te], h)[:, 0]
        else:
            raw = 1 - survival_at(self.learner_, Z, h)[:, 0]
        self.calibrator_ = HorizonCalibrator(self.calibration, self.horizon).fit(raw, y)
        self.train_scores_ = self.calibrator_.transform(1 - survival_at(self.learner_, Z, h)[:, 0])
        return self

    def predict_score(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the event by ``horizon`` months, in [0, 1]."""
        self._check_fitted()
        p_raw = 1 - self.predict_survival_function(X, [self.horizon])[:, 0]
        return self.calibrator_.transform(p_raw)

    def predict_event_probability(
        self, X: pd.DataFrame, horizon: float | None = None
    ) -> np.ndarray:
        """Calibrated at ``self.horizon``; uncalibrated 1 − S(h) at another horizon."""
        if horizon is None or float(horizon) == float(self.horizon):
            return self.predict_score(X)
        return super().predict_event_probability(X, horizon)
