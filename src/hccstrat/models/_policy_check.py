"""The default regimen, and a cross-fitted check that individual recommendations beat it.

The **default regimen** (the model's ``default_arm_``, given to everyone without a
confident individual recommendation) is the regimen with the best doubly robust mean
outcome on the training data, or the least intensive one within a margin of standard
errors of it (:func:`choose_default`).

A treatment-benefit model recommends, for each patient, the regimen with the best
estimated outcome. Whether following those recommendations does better than giving
everyone the default regimen is a question the training data can answer, without the
true effects:

1. the patients are split in ``K`` folds (stratified by regimen and event); for each
   fold the whole learner is refitted on the other folds and gives, for the held-out
   patients, its individual recommendation and its default regimen (chosen out of
   fold too, so that neither side profits from the noise it was chosen on);
2. each held-out patient gets doubly robust (AIPW) scores of the outcome under every
   regimen, ``φ_a = μ_a(x) + 1[A = a] (Ỹ − μ_a(x)) / e_a(x)``, with the fold model's
   outcome ``μ`` and propensity ``e`` and the IPCW outcome ``Ỹ`` (2-year RFS or RMST);
3. the policy's gain over the default is the mean of ``φ_π(x) − φ_d`` with a
   normal interval (Athey & Wager 2021, policy evaluation with cross-fitting).

The recommendations are *validated* when the lower bound is above zero. When they are
not, individual recommendations are no better than the default as far as the data
can tell, and the model abstains for everyone.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import norm
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from hccstrat.models._benefit_core import aipw_scores, ipcw_outcomes

__all__ = ["PolicyCheck", "PolicyWarning", "check_policy", "choose_default"]


class PolicyWarning(UserWarning):
    """Individual recommendations were not shown to beat one regimen for everyone."""


@dataclass(frozen=True)
class PolicyCheck:
    """Cross-fitted estimate of the recommendation policy's gain over the default regimen.

    Attributes
    ----------
    criterion : str
        ``"rfs"`` (2-year RFS, gain in probability) or ``"rmst"`` (months).
    default_arm : str
        The full model's default regimen (``default_arm_``).
    n, folds : int
        Patients and cross-fitting folds.
    deviating : float
        Share of patients whose recommended regimen differs from the default.
    estimate, se : float
        AIPW estimate of the mean gain and its standard error.
    lo, hi : float
        Interval at ``confidence``.
    confidence : float
    arm_means : dict
        Doubly robust (cross-fitted AIPW) mean outcome under each regimen for
        everyone, with its standard error: ``{arm: (mean, se)}``.
    fold_defaults : tuple of str
        The default regimen each fold's model chose on its own training part, which
        that fold's recommendations are compared with (empty when not recorded).
    """

    criterion: str
    default_arm: str
    n: int
    folds: int
    deviating: float
    estimate: float
    se: float
    lo: float
    hi: float
    confidence: float
    arm_means: dict
    fold_defaults: tuple = ()

    @property
    def validated(self) -> bool:
        """True when the interval of the gain lies above zero."""
        return bool(self.lo > 0)

    def _versus(self) -> str:
        """What the recommendations were compared with, as read in the summary."""
        others = [a for a in self.fold_defaults if a != self.default_arm]
        if not others:
            return f"{self.default_arm} for everyone"
        return (
            f"the default regimen for everyone ({self.default_arm} for the full model; "
            f"per fold: {', '.join(self.fold_defaults)})"
        )

    def summary(self) -> str:
        """One line for logs, reports and the model card."""
        if self.deviating == 0:
            return (
                f"individual recommendations vs {self._versus()}, cross-fitted "
                f"on {self.n} patients ({self.folds} folds): no patient was recommended another "
                "regimen, nothing to validate -> NOT validated"
            )
        unit = "in 2-year RFS" if self.criterion == "rfs" else "months of RMST"
        scale = 100 if self.criterion == "rfs" else 1
        pts = " points" if self.criterion == "rfs" else ""
        return (
            f"individual recommendations vs {self._versus()}, cross-fitted on "
            f"{self.n} patients ({self.folds} folds; {self.deviating:.0%} recommended "
            f"another regimen): gain {unit} {scale * self.estimate:+.1f}{pts} "
            f"({self.confidence:.0%} CI {scale * self.lo:+.1f} to {scale * self.hi:+.1f}) "
            f"-> {'validated' if self.validated else 'NOT validated'}"
        )

    def to_dict(self) -> dict:
        """Plain values (JSON-ready), with ``validated``."""
        return {**asdict(self), "validated": self.validated}


def choose_default(
    phi: np.ndarray, arms: tuple[str, ...], margin_se: float = 0.0, criterion: str = "rfs"
) -> tuple[int, str]:
    """The regimen for everyone without a confident individual recommendation.

    The regimen with the best doubly robust mean outcome or, with ``margin_se`` > 0,
    the least intensive regimen (``arms`` are ordered from least to most intensive)
    whose mean is within ``margin_se`` standard errors of the best one's (standard
    error of the paired difference; 1 = a one-standard-error rule): a regimen that
    adds toxicity is then not given to everyone on a difference the data cannot tell
    from noise, at the price of sometimes giving up a real average benefit of about
    that size. The reason lists every regimen's difference from the best, so a reader
    sees when the choice is a coin flip.

    Parameters
    ----------
    phi : ndarray [n, A]
        Per-patient AIPW scores (:func:`~hccstrat.models._benefit_core.aipw_scores`).
    arms : tuple of str
        Regimen names, least intensive first.
    margin_se : float
        Tolerance in standard errors (0: the best mean).
    criterion : {"rfs", "rmst"}
        Only for the wording of the reason.

    Returns
    -------
    index : int
        Chosen arm.
    reason : str
        One line saying why, with the estimates.
    """
    n = len(phi)
    scale, unit = (100.0, " points") if criterion == "rfs" else (1.0, " months")
    best = int(np.argmax(phi.mean(axis=0)))
    chosen, steps = best, []
    for a in range(phi.shape[1]):
        if a == best:
            continue
        d = phi[:, a] - phi[:, best]
        est = float(d.mean())
        se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
        steps.append(f"{arms[a]} vs {arms[best]} {scale * est:+.1f}{unit} (se {scale * se:.1f})")
        if a < chosen and est + margin_se * se >= 0:
            chosen = a
    detail = "; ".join(steps) if steps else f"{arms[best]} is the only regimen"
    rule = (
        "the best mean outcome for everyone"
        if margin_se <= 0
        else f"the least intensive regimen whose mean outcome for everyone is within "
        f"{margin_se:g} standard error(s) of the best one's"
    )
    reason = f"default regimen {arms[chosen]}: {rule} (doubly robust, training data: {detail})"
    return chosen, reason


def check_policy(
    model, X, y, arm: np.ndarray, arms: tuple[str, ...], folds: int
) -> PolicyCheck:
    """Cross-fitted AIPW gain of ``model``'s recommendations over its ``default_arm_``.

    Parameters
    ----------
    model : TreatmentBenefitModel
        Fitted on ``X``, ``y`` (its parameters are reused; each fold refits a clone
        without bootstrap or nested check).
    X : DataFrame
        Training table (with ``adjuvant``).
    y : structured array
        RFS target.
    arm : ndarray of int
        Regimen received (index into ``arms``).
    arms : tuple of str
        Regimen names, in the model's order.
    folds : int
        Number of cross-fitting folds (>= 2).

    Returns
    -------
    PolicyCheck
    """
    n_arms = len(arms)
    horizon = float(model.horizon)
    key = model.criterion
    n = len(X)
    mu, e = np.zeros((n, n_arms)), np.zeros((n, n_arms))
    default = np.zeros(n, int)  # each fold's own default: no winner's curse
    fold_defaults = []
    splitter = StratifiedKFold(folds, shuffle=True, random_state=model.random_state)
    strata = arm * 2 + y["event"].astype(int)
    for tr, te in splitter.split(np.zeros(n), strata):
        inner = clone(model).set_params(n_bootstrap=0, validation_folds=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # overlap warnings were given by the full fit
            inner.fit(X.iloc[tr], y[tr])
        out = inner.core_.predict(inner.features_.transform(X.iloc[te]).to_numpy())
        mu[te], e[te] = out[key], out["propensity"]
        default[te] = list(arms).index(inner.default_arm_)
        fold_defaults.append(inner.default_arm_)
    y_rfs, y_rmst = ipcw_outcomes(y, arm, n_arms, horizon)
    obs = y_rfs if key == "rfs" else y_rmst
    phi = aipw_scores(mu, e, arm, obs, float(model.clip))
    policy = mu.argmax(axis=1)
    rows = np.arange(n)
    diff = phi[rows, policy] - phi[rows, default]
    est = float(diff.mean())
    se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    z = float(norm.ppf(0.5 + model.confidence / 2))
    return PolicyCheck(
        criterion=key,
        default_arm=model.default_arm_,
        n=n,
        folds=folds,
        deviating=float(np.mean(policy != default)),
        estimate=est,
        se=se,
        lo=est - z * se,
        hi=est + z * se,
        confidence=float(model.confidence),
        arm_means={
            a: (float(phi[:, j].mean()), float(phi[:, j].std(ddof=1) / np.sqrt(n)))
            for j, a in enumerate(arms)
        },
        fold_defaults=tuple(fold_defaults),
    )
