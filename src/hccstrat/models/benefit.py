"""Treatment-benefit model: which adjuvant regimen after resection (NCT07417800).

Learns, from observational data where the regimen (surgery alone / +TACE /
+TACE+TKI, column ``adjuvant``) was chosen by clinicians, each patient's RFS under
each regimen (see :mod:`hccstrat.models._benefit_core` for the T-, DR- and
S-learners, IPTW and IPCW). Uncertainty comes from a patient-level bootstrap of the
whole fit. The ``policy`` column falls back, for patients without a confident
recommendation, to the default regimen (``fallback="default"``: the best doubly
robust mean outcome on the training data, or the least intensive regimen within
``default_margin_se`` standard errors of it, see
:func:`~hccstrat.models._policy_check.choose_default`) or to the point estimate's best
regimen (``fallback="best"``).

Per patient, :meth:`TreatmentBenefitModel.predict_benefit` gives the RFS curve and
the 2-year RFS and RMST (24 months) under each regimen with intervals, the
recommended regimen — or ``"no confident recommendation"`` when the bootstrap
interval of the difference between the best and the runner-up regimen includes
zero — and the expected gain over *current practice*, defined as the outcome
expected under the regimen mix clinicians chose for similar patients,
``Σ_a e_a(x) μ_a(x)`` with ``e`` the propensity model.

Propensity overlap is checked in ``fit`` (:func:`propensity_overlap`); poor overlap
raises an :class:`OverlapWarning` and patients outside the common support are
flagged in predictions.

``fit`` also checks, cross-fitted on the training data, that following the individual
recommendations does better than the default regimen for everyone
(:mod:`hccstrat.models._policy_check`, ``policy_check_``). When it cannot show that,
a :class:`PolicyWarning` is raised and every patient gets ``"no confident
recommendation"`` (the estimates stay available).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from hccstrat._columns import spec
from hccstrat.exceptions import (
    DataValidationError,
    ModelError,
    NotFittedError,
    Problem,
    ValidationReport,
)
from hccstrat.models._base import check_target, concordance, training_summary
from hccstrat.models._benefit_core import CoreParams, aipw_scores, fit_core, ipcw_outcomes
from hccstrat.models._features import FeatureAssembler
from hccstrat.models._overlap import OverlapWarning, propensity_overlap
from hccstrat.models._policy_check import (
    PolicyCheck,
    PolicyWarning,
    check_policy,
    choose_default,
)

__all__ = [
    "ARMS",
    "NO_RECOMMENDATION",
    "BenefitPrediction",
    "OverlapWarning",
    "PolicyCheck",
    "PolicyWarning",
    "TreatmentBenefitModel",
    "propensity_overlap",
]

log = logging.getLogger(__name__)

#: Adjuvant regimens in the canonical table (``adjuvant``), least intensive first.
ARMS: tuple[str, ...] = tuple(spec("adjuvant").categories)
#: Label of an abstention.
NO_RECOMMENDATION = "no confident recommendation"


@dataclass
class BenefitPrediction:
    """Per-patient predictions of :class:`TreatmentBenefitModel`.

    Attributes
    ----------
    arms : tuple of str
    times : ndarray [T]
        Grid of the curves, months.
    curves, curves_lo, curves_hi : ndarray [n, A, T]
        RFS curve under each arm and its bootstrap interval.
    table : DataFrame
        One row per patient: ``rfs24_<arm>``/``rmst24_<arm>`` with ``_lo``/``_hi``,
        ``best_arm``, ``recommended``, ``confident``, ``policy`` (the recommended
        regimen; when not confident, the point estimate's best regimen or the
        default regimen, see ``fallback``), ``current_rfs24``,
        ``gain_rfs24`` (+``_lo``/``_hi``), ``gain_rmst24``, ``outside_support``.
    """

    arms: tuple[str, ...]
    times: np.ndarray
    curves: np.ndarray
    curves_lo: np.ndarray
    curves_hi: np.ndarray
    table: pd.DataFrame


class TreatmentBenefitModel(BaseEstimator):
    """Three-arm adjuvant treatment-benefit model with uncertainty and abstention.

    Parameters
    ----------
    learner : {"dr", "t", "s"}
        DR-learner (cross-fitted, IPTW + IPCW), T-learner, or S-learner (one penalised
        Cox model with arm × prognostic-score and arm × feature interactions; the
        most data-efficient when effects vary along a few axes).
    outcome_model : {"gbsa", "rsf", "coxnet", "deep"}
        Survival base model of the T-learner (gradient-boosted Cox by default; "deep"
        = one multi-head survival net).
    criterion : {"rfs", "rmst"}
        Outcome the recommendation maximises: 2-year RFS or 24-month RMST.
    image_prefixes : tuple of str or None
        Image feature prefixes (``None`` = MRI and WSI features when present).
    n_estimators, learning_rate, max_depth, min_samples_leaf, subsample
        Gradient-boosting settings of the outcome models.
    propensity_c : float or None
        Inverse L2 penalty of the propensity model (None: chosen by 3-fold
        cross-validated log loss over 1e-3 to 10).
    clip : float
        Propensity floor for weights; overlap threshold.
    n_folds : int
        Cross-fitting folds of the DR-learner.
    n_bootstrap : int
        Bootstrap replicates (0 = no intervals, never abstains).
    confidence : float
        Level of the intervals (e.g. 0.9).
    fallback : {"default", "best"}
        ``policy`` for a patient without a confident recommendation: the default
        regimen (``default_arm_``, see ``default_margin_se``) or the point estimate's best
        regimen ("best"; the abstention is still reported in ``recommended`` /
        ``confident``; "default" whenever the policy check did not validate the
        recommendations). On the synthetic benchmark (small true heterogeneity, noisy
        individual estimates) "default" gives the higher policy value.
    default_margin_se : float
        The default regimen (``default_arm_``, for patients without a confident
        recommendation) is the least intensive regimen whose doubly robust mean outcome
        on the training data is within this many standard errors of the best regimen's
        (0, the default: the best mean; 1: a one-standard-error rule that does not give
        a more toxic regimen to everyone on a difference within noise). On the
        synthetic benchmark, where TACE beats surgery alone by about one standard
        error, 1 lost about 0.2 points of true 2-year RFS on average over 26 cohorts
        (it kept surgery alone too often); where more intensive regimens do not
        truly help, it spares their toxicity.
    validation_folds : int
        Folds of the cross-fitted check of the recommendations against the default
        regimen for everyone (0 = no check; recommendations are then never withheld
        for the whole cohort). Costs that many extra fits.
    s_alpha : float
        Elastic-net penalty of the S-learner's Cox model.
    interaction_penalty : float
        Penalty factor of the S-learner's arm × feature interactions (relative to
        the features' main effects).
    horizon : float
        Months (24).
    n_grid : int
        Points of the curve grid over ``[0, horizon]``.
    deep_params : dict or None
        Settings of :class:`~hccstrat.models.deep_benefit.MultiArmSurvivalNet`.
    random_state : int
        Seed.
    """

    def __init__(
        self,
        learner: str = "dr",
        outcome_model: str = "gbsa",
        criterion: str = "rfs",
        image_prefixes: tuple[str, ...] | None = None,
        n_estimators: int = 150,
        learning_rate: float = 0.05,
        max_depth: int = 2,
        min_samples_leaf: int = 10,
        subsample: float = 0.8,
        propensity_c: float | None = None,
        clip: float = 0.05,
        n_folds: int = 2,
        n_bootstrap: int = 20,
        confidence: float = 0.9,
        fallback: str = "default",
        default_margin_se: float = 0.0,
        validation_folds: int = 3,
        s_alpha: float = 0.01,
        interaction_penalty: float = 3.0,
        horizon: float = 24.0,
        n_grid: int = 25,
        deep_params: dict | None = None,
        random_state: int = 0,
    ) -> None:
        self.learner = learner
        self.outcome_model = outcome_model
        self.criterion = criterion
        self.image_prefixes = image_prefixes
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.subsample = subsample
        self.propensity_c = propensity_c
        self.clip = clip
        self.n_folds = n_folds
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.fallback = fallback
        self.default_margin_se = default_margin_se
        self.validation_folds = validation_folds
        self.s_alpha = s_alpha
        self.interaction_penalty = interaction_penalty
        self.horizon = horizon
        self.n_grid = n_grid
        self.deep_params = deep_params
        self.random_state = random_state

    # -- fit -------------------------------------------------------------------------
    def _arm_codes(self, X: pd.DataFrame) -> np.ndarray:
        if "adjuvant" not in X.columns:
            raise ModelError(
                "the table has no 'adjuvant' column (regimen received)",
                hint=f"add it with values {', '.join(ARMS)}",
            )
        txt = X["adjuvant"].astype("string")
        codes = txt.map({a: i for i, a in enumerate(ARMS)})
        bad = codes.isna()
        if bad.any():
            report = ValidationReport(source="treatment-benefit training table")
            for pos in np.flatnonzero(bad.to_numpy())[:50]:
                pid = X["patient_id"].iloc[pos] if "patient_id" in X.columns else None
                report.add(
                    Problem(
                        int(pos) + 1,
                        None if pid is None else str(pid),
                        "adjuvant",
                        X["adjuvant"].iloc[pos],
                        "one of " + ", ".join(ARMS),
                    )
                )
            raise DataValidationError(
                report, hint="fill or drop rows without a known adjuvant regimen"
            )
        return codes.astype(int).to_numpy()

    def _params(self) -> CoreParams:
        return CoreParams(
            n_arms=len(ARMS),
            times=np.linspace(0.0, float(self.horizon), int(self.n_grid)),
            horizon=float(self.horizon),
            learner=self.learner,
            outcome_model=self.outcome_model,
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            subsample=self.subsample,
            propensity_c=self.propensity_c,
            clip=self.clip,
            n_folds=self.n_folds,
            s_alpha=self.s_alpha,
            interaction_penalty=self.interaction_penalty,
            deep_params=dict(self.deep_params or {}),
            arm_names=tuple(ARMS),
        )

    def fit(self, X: pd.DataFrame, y, progress=None):
        """Fit on the wide table (with ``adjuvant``) and the RFS target.

        Parameters
        ----------
        X : DataFrame
            Canonical table (+ image features) with the regimen received in ``adjuvant``.
        y : structured array
            RFS target, e.g. ``hccstrat.survival.endpoint(X, "rfs")``.
        progress : callable, optional
            ``progress(str)`` called once per bootstrap replicate.
        """
        if self.criterion not in ("rfs", "rmst"):
            raise ModelError(f"unknown criterion {self.criterion!r}", hint="use 'rfs' or 'rmst'")
        if self.fallback not in ("best", "default"):
            raise ModelError(
                f"unknown fallback {self.fallback!r}", hint="use 'best' or 'default'"
            )
        margin = self.default_margin_se
        if not isinstance(margin, int | float) or not np.isfinite(margin) or margin < 0:
            raise ModelError(
                f"default_margin_se={margin!r} is not a number of standard errors",
                hint="use 0 (best mean) or a positive number such as 1",
            )
        check_target(y, len(X))
        arm = self._arm_codes(X)
        counts = np.bincount(arm, minlength=len(ARMS))
        if not counts.all():  # the propensity model would fail with a bare sklearn error
            received = ", ".join(f"{a}: {n}" for a, n in zip(ARMS, counts, strict=True))
            raise ModelError(
                "no patient in the table received "
                + " or ".join(a for a, n in zip(ARMS, counts, strict=True) if not n)
                + f" (regimens received: {received})",
                hint="the benefit model compares all three regimens: train it on patients of each",
            )
        self.features_ = FeatureAssembler(stage="benefit", image_prefixes=self.image_prefixes).fit(
            X
        )
        Z = self.features_.transform(X).to_numpy()
        params = self._params()
        self.times_ = params.times
        self.core_ = fit_core(Z, y, arm, params, self.random_state)
        fitted = self.core_.predict(Z)
        e = fitted["propensity"]
        # regimen for everyone without a confident individual recommendation: the best
        # doubly robust mean (or the least intensive within default_margin_se of it)
        obs = ipcw_outcomes(y, arm, len(ARMS), float(self.horizon))[
            0 if self.criterion == "rfs" else 1
        ]
        phi = aipw_scores(fitted[self.criterion], e, arm, obs, self.clip)
        j, self.default_arm_reason_ = choose_default(
            phi, ARMS, float(self.default_margin_se), self.criterion
        )
        self.default_arm_ = ARMS[j]
        self.overlap_, self.overlap_warnings_ = propensity_overlap(e, arm, ARMS, clip=self.clip)
        for msg in self.overlap_warnings_:
            warnings.warn(msg, OverlapWarning, stacklevel=2)
        rng = np.random.default_rng(self.random_state)
        self.bootstrap_cores_ = []
        for b in range(int(self.n_bootstrap)):
            if progress is not None:
                progress(f"benefit model bootstrap {b + 1}/{self.n_bootstrap}")
            idx = np.concatenate(
                [
                    rng.choice(np.flatnonzero(arm == a), (arm == a).sum(), replace=True)
                    for a in range(len(ARMS))
                ]
            )
            try:
                self.bootstrap_cores_.append(
                    fit_core(Z[idx], y[idx], arm[idx], params, self.random_state + 1 + b)
                )
            except ModelError as err:  # one failed replicate is recorded, the rest go on
                log.warning("bootstrap replicate %d failed: %s", b + 1, err)
        self.n_bootstrap_failed_ = int(self.n_bootstrap) - len(self.bootstrap_cores_)
        #: cross-fitted gain of the recommendations over ``default_arm_`` (or None)
        self.policy_check_: PolicyCheck | None = None
        #: why the policy check could not run (then the model abstains for everyone)
        self.policy_check_error_: str | None = None
        if int(self.validation_folds) >= 2:
            if progress is not None:
                progress(f"benefit model policy check ({self.validation_folds} folds)")
            try:
                self.policy_check_ = check_policy(
                    self, X, y, arm, ARMS, int(self.validation_folds)
                )
            except ModelError as err:  # e.g. an arm too small to refit on a fold
                self.policy_check_error_ = err.message
                reason = f"the policy check could not run ({err.message})"
            else:
                log.info("%s", self.policy_check_.summary())
                reason = self.policy_check_.summary()
            if self.policy_check_ is None or not self.policy_check_.validated:
                warnings.warn(
                    f"{reason}: every patient gets '{NO_RECOMMENDATION}' and the policy "
                    f"falls back to {self.default_arm_}",
                    PolicyWarning,
                    stacklevel=2,
                )
        self.training_summary_ = training_summary(X, y)
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        return self

    # -- predict ---------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "core_"):
            raise NotFittedError(
                "this TreatmentBenefitModel is not fitted yet", hint="call fit(X, y) first"
            )

    @property
    def lacking_(self):
        """Inputs lacking at fit time."""
        self._check_fitted()
        return self.features_.lacking_

    @property
    def recommendations_validated_(self) -> bool:
        """False when the policy check ran (or was asked for and failed) and did not
        show that the individual recommendations beat the default regimen."""
        if int(getattr(self, "validation_folds", 0)) < 2:
            return True
        check = getattr(self, "policy_check_", None)
        return check is not None and check.validated

    def predict_benefit(self, X: pd.DataFrame) -> BenefitPrediction:
        """Per-patient curves, 2-year RFS/RMST per arm, recommendation and expected gain."""
        self._check_fitted()
        Z = self.features_.transform(X).to_numpy()
        main = self.core_.predict(Z)
        boots = [c.predict(Z) for c in self.bootstrap_cores_]
        lo_q, hi_q = (1 - self.confidence) / 2, 1 - (1 - self.confidence) / 2
        n, _A = main["rfs"].shape
        tab = pd.DataFrame(index=X.index)
        if "patient_id" in X.columns:
            tab["patient_id"] = X["patient_id"].to_numpy()

        def band(key):
            if not boots:
                return main[key], main[key]
            stack = np.stack([b[key] for b in boots])
            return np.quantile(stack, lo_q, axis=0), np.quantile(stack, hi_q, axis=0)

        for key, label in (("rfs", "rfs24"), ("rmst", "rmst24")):
            lo, hi = band(key)
            for a, name in enumerate(ARMS):
                tab[f"{label}_{name}"] = main[key][:, a]
                tab[f"{label}_{name}_lo"] = lo[:, a]
                tab[f"{label}_{name}_hi"] = hi[:, a]
        crit = main[self.criterion]
        order = np.argsort(-crit, axis=1)
        best, second = order[:, 0], order[:, 1]
        rows = np.arange(n)
        confident = np.zeros(n, bool)
        if boots:
            diff = np.stack(
                [b[self.criterion][rows, best] - b[self.criterion][rows, second] for b in boots]
            )
            confident = np.quantile(diff, lo_q, axis=0) > 0
        if not self.recommendations_validated_:
            confident[:] = False  # not shown to beat the default regimen for everyone
        tab["best_arm"] = np.asarray(ARMS, dtype=object)[best]
        tab["confident"] = confident
        tab["recommended"] = np.where(confident, tab["best_arm"], NO_RECOMMENDATION)
        # the point estimates' policy is what the check found no better than the default
        best_ok = self.fallback == "best" and self.recommendations_validated_
        fallback = tab["best_arm"] if best_ok else self.default_arm_
        tab["policy"] = np.where(confident, tab["best_arm"], fallback)
        for key, label in (("rfs", "rfs24"), ("rmst", "rmst24")):
            cur = (main["propensity"] * main[key]).sum(1)
            tab[f"current_{label}"] = cur
            tab[f"gain_{label}"] = main[key][rows, best] - cur
            if boots:
                g = np.stack(
                    [b[key][rows, best] - (b["propensity"] * b[key]).sum(1) for b in boots]
                )
                tab[f"gain_{label}_lo"] = np.quantile(g, lo_q, axis=0)
                tab[f"gain_{label}_hi"] = np.quantile(g, hi_q, axis=0)
        tab["outside_support"] = (main["propensity"] < self.clip).any(axis=1)
        c_lo, c_hi = band("curves")
        return BenefitPrediction(ARMS, self.times_, main["curves"], c_lo, c_hi, tab)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Recommended regimen per patient (or :data:`NO_RECOMMENDATION`)."""
        return self.predict_benefit(X).table["recommended"].to_numpy(dtype=object)

    def predict_outcomes(self, X: pd.DataFrame) -> pd.DataFrame:
        """Point estimates of 2-year RFS per arm (columns = arms), no bootstrap."""
        self._check_fitted()
        out = self.core_.predict(self.features_.transform(X).to_numpy())
        return pd.DataFrame(out["rfs"], columns=list(ARMS), index=X.index)

    def score(self, X: pd.DataFrame, y) -> float:
        """Harrell's C of predicted 2-year RFS under the regimen received (negated)."""
        arm = self._arm_codes(X)
        rfs = self.predict_outcomes(X).to_numpy()
        return concordance(y, -rfs[np.arange(len(arm)), arm])
