"""Shared machinery: survival base learners, target checks, censoring weights.

:class:`FeatureSurvivalModel` is the base of every tabular model: it assembles the
features (:class:`~hccstrat.models._features.FeatureAssembler`), fits a
scikit-survival estimator and exposes ``predict`` (risk, higher = worse),
``predict_survival_function`` (on a time grid, months), ``predict_event_probability``
and ``score`` (Harrell's C), so it works with scikit-learn cross-validation and search.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from hccstrat.exceptions import ModelError, NotFittedError
from hccstrat.models._features import FeatureAssembler, LackingReport

__all__ = [
    "BASE_LEARNERS",
    "FeatureSurvivalModel",
    "censoring_survival",
    "check_target",
    "concordance",
    "discrete_time_bins",
    "ipcw_weights",
    "make_survival_learner",
    "survival_at",
    "training_summary",
]

#: Names accepted by :func:`make_survival_learner`.
BASE_LEARNERS = ("coxnet", "cox", "rsf", "gbsa")


def check_target(y, n: int | None = None, *, where: str = "fit") -> np.ndarray:
    """Validate a sksurv structured target (fields ``event``, ``time``)."""
    names = getattr(getattr(y, "dtype", None), "names", None) or ()
    if "event" not in names or "time" not in names:
        raise ModelError(
            f"{where}: the target must be a structured array with fields 'event' and 'time'",
            hint="build it with hccstrat.survival.endpoint(...) or make_surv(event, time)",
        )
    if n is not None and len(y) != n:
        raise ModelError(
            f"{where}: {len(y)} targets for {n} rows", hint="pass one target per patient"
        )
    if not np.asarray(y["event"]).any():
        raise ModelError(
            f"{where}: no events in the target", hint="a survival model needs events to learn from"
        )
    return y


def make_survival_learner(
    base: str,
    *,
    alpha: float = 0.05,
    l1_ratio: float = 0.5,
    n_estimators: int = 200,
    learning_rate: float = 0.05,
    max_depth: int = 2,
    min_samples_leaf: int = 10,
    subsample: float = 0.8,
    random_state=None,
):
    """Create an unfitted scikit-survival estimator.

    Parameters
    ----------
    base : {"coxnet", "cox", "rsf", "gbsa"}
        Elastic-net Cox, ridge Cox, random survival forest, gradient-boosted Cox.
    """
    from sksurv.ensemble import GradientBoostingSurvivalAnalysis, RandomSurvivalForest
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    from hccstrat.models._coxnet import StableCoxnet

    if base == "coxnet":
        return StableCoxnet(l1_ratio=l1_ratio, alphas=[alpha], fit_baseline_model=True)
    if base == "cox":
        return CoxPHSurvivalAnalysis(alpha=alpha, ties="efron")
    if base == "rsf":
        return RandomSurvivalForest(
            n_estimators=n_estimators,
            min_samples_leaf=min_samples_leaf,
            max_features="sqrt",
            random_state=random_state,
            n_jobs=1,
        )
    if base == "gbsa":
        return GradientBoostingSurvivalAnalysis(
            loss="coxph",
            n_estimators=n_estimators,
            learning_rate=learning_rate,
            max_depth=max_depth,
            min_samples_leaf=min_samples_leaf,
            subsample=subsample,
            random_state=random_state,
        )
    raise ModelError(
        f"unknown base learner {base!r}", hint=f"use one of {', '.join(BASE_LEARNERS)}"
    )


def survival_at(estimator, Z, times: np.ndarray) -> np.ndarray:
    """Survival probabilities [n, len(times)] of a fitted sksurv estimator."""
    fns = estimator.predict_survival_function(Z)
    out = np.empty((len(fns), len(times)))
    for i, fn in enumerate(fns):
        lo, hi = fn.domain
        out[i] = fn(np.clip(times, lo, hi))
        out[i, times < lo] = 1.0
    return out


def censoring_survival(y: np.ndarray):
    """Kaplan–Meier estimate of the censoring distribution G(t) = P(C > t).

    Returns a callable giving G at the left limit of each time (clipped below at 0.05
    so inverse weights stay bounded).
    """
    from sksurv.nonparametric import kaplan_meier_estimator

    t, g = kaplan_meier_estimator(~y["event"], y["time"])

    def G(times: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(t, np.asarray(times, float), side="left") - 1
        val = np.where(idx >= 0, g[np.clip(idx, 0, None)], 1.0)
        return np.clip(val, 0.05, 1.0)

    return G


def ipcw_weights(y: np.ndarray, horizon: float, G=None) -> tuple[np.ndarray, np.ndarray]:
    """Binary status by ``horizon`` with inverse-probability-of-censoring weights.

    Returns
    -------
    event : ndarray of bool
        Event by the horizon.
    weight : ndarray of float
        ``1 / G(min(T, horizon)-)`` where the status is known, 0 where censored before.
    """
    G = G or censoring_survival(y)
    event = y["event"] & (y["time"] <= horizon)
    known = event | (y["time"] >= horizon)
    w = np.where(known, 1.0 / G(np.minimum(y["time"], horizon)), 0.0)
    return event, w


def discrete_time_bins(y: np.ndarray, horizon: float, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Interval index and event flag of each patient for a discrete-time hazard model.

    The intervals are ``(e_k, e_{k+1}]`` with ``e = linspace(0, horizon, n_bins + 1)``.
    An event at ``t <= horizon`` falls in the interval containing ``t``; a patient
    censored at ``t`` survived every interval that ends at or before ``t`` — so a
    patient followed event-free to exactly the horizon (administrative censoring at
    24 months) survived all of them and gets index ``n_bins``.

    Returns
    -------
    idx : ndarray of int
        Interval of the event, or the number of intervals survived when censored.
    event : ndarray of bool
        Event within the horizon.
    """
    edges = np.linspace(0.0, float(horizon), int(n_bins) + 1)[1:]
    t = np.asarray(y["time"], float)
    event = np.asarray(y["event"], bool) & (t <= horizon)
    idx = np.where(
        event, np.searchsorted(edges, t, side="left"), np.searchsorted(edges, t, side="right")
    )
    return np.minimum(idx, int(n_bins)), event


def concordance(y: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C of ``risk`` (higher = earlier event) against a survival target."""
    from sksurv.metrics import concordance_index_censored

    return float(concordance_index_censored(y["event"], y["time"], np.asarray(risk, float))[0])


def training_summary(X: pd.DataFrame, y: np.ndarray) -> dict:
    """Summary of the training data for model cards (no patient-level values)."""
    out: dict = {
        "n_patients": len(y),
        "n_events": int(np.sum(y["event"])),
        "median_followup_months": float(np.median(y["time"])),
    }
    if "centre" in X.columns:
        out["centres"] = {
            str(k): int(v) for k, v in X["centre"].value_counts().sort_index().items()
        }
    if "surgery_date" in X.columns:
        d = pd.to_datetime(X["surgery_date"])
        if d.notna().any():
            out["surgery_dates"] = [str(d.min().date()), str(d.max().date())]
    if "adjuvant" in X.columns:
        out["adjuvant"] = {str(k): int(v) for k, v in X["adjuvant"].value_counts().items()}
    return out


class FeatureSurvivalModel(BaseEstimator):
    """Base of tabular survival models: feature assembly + a sksurv learner.

    Subclasses define ``__init__`` (parameters only) and ``_make_learner``; the class
    attribute ``_stage`` picks the clinical inputs unless a ``stage`` parameter exists.
    """

    _stage = "pre"
    _default_prefixes: tuple[str, ...] | None = None

    # -- to override ---------------------------------------------------------------------
    def _make_learner(self):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------------------
    def _assembler(self) -> FeatureAssembler:
        stage = getattr(self, "stage", self._stage)
        prefixes = getattr(self, "image_prefixes", self._default_prefixes)
        return FeatureAssembler(stage=stage, image_prefixes=prefixes)

    def _check_fitted(self) -> None:
        if not hasattr(self, "features_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet", hint="call fit(X, y) first"
            )

    def _fit_features(self, X: pd.DataFrame, y) -> pd.DataFrame:
        self.features_ = self._assembler().fit(X)
        check_target(y, len(X))
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(X.columns)
        self.training_summary_ = training_summary(X, y)
        return self.features_.transform(X)

    @property
    def lacking_(self) -> LackingReport:
        """Inputs lacking at fit time (see :class:`LackingReport`)."""
        self._check_fitted()
        return self.features_.lacking_

    @property
    def feature_names_(self) -> list[str]:
        """Names of the model features after assembly."""
        self._check_fitted()
        return list(self.features_.feature_names_out_)

    def transform_features(self, X: pd.DataFrame) -> pd.DataFrame:
        """Assembled, standardised features of ``X``."""
        self._check_fitted()
        return self.features_.transform(X)

    # -- sklearn API ---------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y):
        """Fit on the wide patient table ``X`` and survival target ``y``."""
        Z = self._fit_features(X, y)
        self.learner_ = self._make_learner().fit(Z.to_numpy(), y)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Risk score (higher = earlier event)."""
        self._check_fitted()
        return np.asarray(self.learner_.predict(self.transform_features(X).to_numpy()), float)

    def predict_survival_function(self, X: pd.DataFrame, times) -> np.ndarray:
        """Survival probabilities [n, len(times)] at ``times`` (months)."""
        self._check_fitted()
        times = np.atleast_1d(np.asarray(times, float))
        return survival_at(self.learner_, self.transform_features(X).to_numpy(), times)

    def predict_event_probability(self, X: pd.DataFrame, horizon: float = 24.0) -> np.ndarray:
        """Probability of the event by ``horizon`` months, 1 − S(horizon)."""
        return 1.0 - self.predict_survival_function(X, [horizon])[:, 0]

    def score(self, X: pd.DataFrame, y) -> float:
        """Harrell's C-index of :meth:`predict` (used by scikit-learn search)."""
        return concordance(y, self.predict(X))
