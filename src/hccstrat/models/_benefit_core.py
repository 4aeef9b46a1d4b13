"""One fit of the treatment-benefit learners (used once, then per bootstrap replicate).

Notation: arms ``a = 0..A-1`` (0 = reference, surgery alone), horizon ``τ`` (24
months), target ``Y`` either ``1[T > τ]`` (2-year RFS) or ``min(T, τ)`` (RMST).

- **Propensity** ``e_a(x)``: multinomial logistic regression (L2 penalty chosen by
  cross-validated log loss unless given), clipped to ``[clip, 1]`` for weighting.
- **T-learner**: one survival model per arm (gradient-boosted Cox by default),
  fitted on that arm's patients with stabilised inverse-probability-of-treatment
  weights (IPTW) so each arm's model targets the whole population; or one
  multi-head deep survival net for all arms. Gives per-patient RFS curves
  ``S_a(t | x)`` and the plug-in ``μ_a(x)``.
- **DR-learner** (Kennedy 2023), cross-fitted: nuisances (propensity, T-learner,
  censoring Kaplan–Meier per arm) fitted on the other folds; IPCW outcome
  ``Ỹ = Δ Y / G_A(min(T, τ)-)`` with ``Δ = 1`` when the status at τ is known;
  pseudo-outcome ``φ_a = μ_a(x) + 1[A=a] (Ỹ − μ_a(x)) / e_a(x)``; the contrasts
  ``φ_a − φ_0`` are regressed on x (gradient boosting) giving ``τ_a(x)``; the
  final ``μ_a(x) = μ_0(x) + τ_a(x)``.
- **S-learner** (``learner="s"``): one penalised Cox model for all arms with arm ×
  prognostic-score and arm × feature interactions
  (:class:`~hccstrat.models._benefit_slearner.InteractionCox`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import StratifiedKFold

from hccstrat.exceptions import ModelError
from hccstrat.models._base import censoring_survival, make_survival_learner, survival_at
from hccstrat.models._benefit_slearner import InteractionCox

__all__ = [
    "BenefitCore",
    "CoreParams",
    "aipw_scores",
    "fit_core",
    "ipcw_outcomes",
    "match_curves",
]


@dataclass
class CoreParams:
    """Settings of one core fit (copied from the estimator's parameters)."""

    n_arms: int
    times: np.ndarray
    horizon: float
    learner: str = "dr"
    outcome_model: str = "gbsa"
    n_estimators: int = 150
    learning_rate: float = 0.05
    max_depth: int = 2
    min_samples_leaf: int = 10
    subsample: float = 0.8
    propensity_c: float | None = None
    clip: float = 0.05
    n_folds: int = 2
    iptw_outcome: bool = True
    s_alpha: float = 0.01
    interaction_penalty: float = 3.0
    deep_params: dict = field(default_factory=dict)
    #: regimen names of the arm codes, for messages
    arm_names: tuple[str, ...] = ()

    def arm_name(self, a: int) -> str:
        """Regimen name of arm code ``a`` (``"arm a"`` when names are not known)."""
        return self.arm_names[a] if a < len(self.arm_names) else f"arm {a}"


def _fit_propensity(Z: np.ndarray, arm: np.ndarray, p: CoreParams):
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    if p.propensity_c is not None:
        return LogisticRegression(C=p.propensity_c, max_iter=2000).fit(Z, arm)
    # penalty by cross-validated log loss: a fixed weak penalty on ~100 features fits
    # noise (propensities of 0.02-0.9 where treatment was randomised), and the IPW
    # terms of the DR pseudo-outcomes and of the policy check inherit that error
    kw = {}
    if "use_legacy_attributes" in inspect.signature(LogisticRegressionCV).parameters:
        kw = {"l1_ratios": (0.0,), "use_legacy_attributes": False}  # scikit-learn >= 1.8
    return LogisticRegressionCV(
        Cs=np.logspace(-3, 1, 9), cv=3, scoring="neg_log_loss", max_iter=2000, **kw
    ).fit(Z, arm)


def _propensity(model, Z: np.ndarray, n_arms: int) -> np.ndarray:
    out = np.zeros((len(Z), n_arms))
    out[:, model.classes_] = model.predict_proba(Z)
    return out


class _Outcome:
    """Per-arm survival curves on the time grid from the T-learner models."""

    def __init__(self, Z, y, arm, e, p: CoreParams, seed: int) -> None:
        self.p = p
        stab = np.bincount(arm, minlength=p.n_arms) / len(arm)
        w = (
            stab[arm] / np.clip(e[np.arange(len(arm)), arm], p.clip, 1.0)
            if p.iptw_outcome
            else np.ones(len(arm))
        )
        if p.outcome_model == "deep":
            from hccstrat.models.deep_benefit import MultiArmSurvivalNet

            self.net = MultiArmSurvivalNet(
                **{
                    "horizon": p.horizon,
                    "n_bins": len(p.times) - 1,
                    "random_state": seed,
                    **p.deep_params,
                }
            )
            self.net.fit(Z, y, arm, sample_weight=w)
            self.models = None
            return
        self.models = []
        for a in range(p.n_arms):
            rows = arm == a
            if rows.sum() < 10 or not y["event"][rows].any():
                raise ModelError(
                    f"{p.arm_name(a)} has {int(rows.sum())} patients and "
                    f"{int(y['event'][rows].sum())} events; "
                    "too few to fit its outcome model",
                    hint="pool rare arms or collect more data",
                )
            learner = make_survival_learner(
                p.outcome_model,
                n_estimators=p.n_estimators,
                learning_rate=p.learning_rate,
                max_depth=p.max_depth,
                min_samples_leaf=p.min_samples_leaf,
                subsample=p.subsample,
                random_state=seed + a,
            )
            if p.outcome_model in ("gbsa", "rsf"):
                learner.fit(Z[rows], y[rows], sample_weight=w[rows])
            else:
                learner.fit(Z[rows], y[rows])
            self.models.append(learner)

    def curves(self, Z: np.ndarray) -> np.ndarray:
        if self.models is None:
            return self.net.predict_survival(Z)
        return np.stack([survival_at(m, Z, self.p.times) for m in self.models], axis=1)


def targets_from_curves(curves: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-year RFS (value at the last grid time) and RMST (trapezoid) from curves [..., T]."""
    return curves[..., -1].copy(), np.trapezoid(curves, times, axis=-1)


def match_curves(curves: np.ndarray, rfs: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Bend curves [n, A, T] so that their last value equals ``rfs`` [n, A].

    Each curve is first taken relative to its value at the first grid time (0), then
    raised to ``k = log(rfs) / log(S(τ))``: it stays monotone, starts at 1 and keeps
    the outcome model's shape (proportional hazards relative to it), while its 2-year
    value becomes the DR-learner's estimate (so the curves a clinician sees agree with
    the 2-year RFS in the table). Curves that are flat at 1 cannot be bent and are
    returned unchanged.
    """
    rel = np.clip(curves / np.clip(curves[..., :1], eps, None), eps, 1.0)
    end = np.clip(rel[..., -1], eps, 1.0 - eps)
    target = np.clip(rfs, eps, 1.0 - eps)
    flat = rel[..., -1] >= 1.0 - eps
    k = np.where(flat, 1.0, np.log(target) / np.log(end))
    return np.where(flat[..., None], curves, rel ** k[..., None])


@dataclass
class BenefitCore:
    """A fitted core: propensity, T-learner outcome models and (DR) contrast regressors."""

    params: CoreParams
    propensity: object
    outcome: _Outcome | InteractionCox
    contrasts: dict | None = None  # (target, arm) -> regressor

    def predict(self, Z: np.ndarray) -> dict:
        """``curves`` [n, A, T], ``rfs`` and ``rmst`` [n, A], ``propensity`` [n, A]."""
        p = self.params
        curves = self.outcome.curves(Z)
        rfs, rmst = targets_from_curves(curves, p.times)
        if self.contrasts is not None:
            for name, mu in (("rfs", rfs), ("rmst", rmst)):
                for a in range(1, p.n_arms):
                    mu[:, a] = mu[:, 0] + self.contrasts[(name, a)].predict(Z)
            rfs = np.clip(rfs, 0.0, 1.0)
            rmst = np.clip(rmst, 0.0, p.horizon)
            curves = match_curves(curves, rfs)
        return {
            "curves": curves,
            "rfs": rfs,
            "rmst": rmst,
            "propensity": _propensity(self.propensity, Z, p.n_arms),
        }


def ipcw_outcomes(y, arm, n_arms, horizon) -> tuple[np.ndarray, np.ndarray]:
    """IPCW-transformed RFS-at-τ and RMST-at-τ outcomes (0 where status unknown)."""
    t, e = y["time"], y["event"]
    known = e | (t >= horizon)
    g = np.ones(len(y))
    for a in range(n_arms):
        rows = arm == a
        if rows.any():
            G = censoring_survival(y[rows])
            g[rows] = G(np.minimum(t[rows], horizon))
    w = np.where(known, 1.0 / g, 0.0)
    return w * (t > horizon), w * np.minimum(t, horizon)


def aipw_scores(
    mu: np.ndarray, e: np.ndarray, arm: np.ndarray, obs: np.ndarray, clip: float
) -> np.ndarray:
    """Doubly robust (AIPW) scores ``φ_a = μ_a(x) + 1[A = a] (Ỹ − μ_a(x)) / e_a(x)``.

    Parameters
    ----------
    mu, e : ndarray [n, A]
        Outcome model's estimate under each arm and propensity of each arm.
    arm : ndarray [n] of int
        Arm received.
    obs : ndarray [n]
        IPCW-transformed observed outcome ``Ỹ``.
    clip : float
        Propensity floor.

    Returns
    -------
    ndarray [n, A]
        Their mean over patients estimates the mean outcome if everyone got arm ``a``.
    """
    onehot = np.eye(mu.shape[1])[arm]
    return mu + onehot / np.clip(e, clip, 1.0) * (obs[:, None] - mu)


def fit_core(
    Z: np.ndarray, y: np.ndarray, arm: np.ndarray, p: CoreParams, seed: int
) -> BenefitCore:
    """Fit propensity, T-learner and (``learner="dr"``) the DR contrast regressors."""
    from sklearn.ensemble import GradientBoostingRegressor

    prop = _fit_propensity(Z, arm, p)
    if p.learner == "s":
        counts = np.bincount(arm, minlength=p.n_arms)
        if (counts < 10).any():
            raise ModelError(
                "patients per regimen "
                + ", ".join(f"{p.arm_name(a)}: {c}" for a, c in enumerate(counts))
                + ": too few (< 10) in a regimen to fit its effect",
                hint="pool rare arms or collect more data",
            )
        outcome = InteractionCox(
            p.n_arms, p.times, alpha=p.s_alpha, interaction_penalty=p.interaction_penalty
        ).fit(Z, y, arm)
        return BenefitCore(p, prop, outcome)
    e_full = _propensity(prop, Z, p.n_arms)
    outcome = _Outcome(Z, y, arm, e_full, p, seed)
    core = BenefitCore(p, prop, outcome)
    if p.learner == "t":
        return core
    if p.learner != "dr":
        raise ModelError(f"unknown learner {p.learner!r}", hint="use 's', 't' or 'dr'")
    n = len(y)
    mu = {"rfs": np.zeros((n, p.n_arms)), "rmst": np.zeros((n, p.n_arms))}
    e = np.zeros((n, p.n_arms))
    folds = StratifiedKFold(p.n_folds, shuffle=True, random_state=seed)
    strata = arm * 2 + y["event"].astype(int)
    for k, (tr, te) in enumerate(folds.split(Z, strata)):
        prop_k = _fit_propensity(Z[tr], arm[tr], p)
        e_tr = _propensity(prop_k, Z[tr], p.n_arms)
        out_k = _Outcome(Z[tr], y[tr], arm[tr], e_tr, p, seed + 101 * (k + 1))
        r, m = targets_from_curves(out_k.curves(Z[te]), p.times)
        mu["rfs"][te], mu["rmst"][te] = r, m
        e[te] = _propensity(prop_k, Z[te], p.n_arms)
    y_rfs, y_rmst = ipcw_outcomes(y, arm, p.n_arms, p.horizon)
    contrasts = {}
    for name, obs in (("rfs", y_rfs), ("rmst", y_rmst)):
        phi = aipw_scores(mu[name], e, arm, obs, p.clip)
        for a in range(1, p.n_arms):
            reg = GradientBoostingRegressor(
                n_estimators=100,
                max_depth=2,
                learning_rate=0.05,
                subsample=0.8,
                min_samples_leaf=max(20, n // 50),
                loss="huber",
                random_state=seed + a,
            )
            contrasts[(name, a)] = reg.fit(Z, phi[:, a] - phi[:, 0])
    core.contrasts = contrasts
    return core
