"""Regularised S-learner of the treatment-benefit model: one Cox model for all arms.

Effect heterogeneity in adjuvant HCC therapy is expected along a few axes — how
high the baseline (residual-disease) risk is, and a handful of tumour traits such
as the immune phenotype — so the arms share one penalised Cox model:

1. a main-effects elastic-net Cox model on ``[Z, arm dummies]`` gives a prognostic
   score ``r(x)`` (standardised on the training data);
2. the outcome model is an elastic-net Cox model on
   ``[Z, D, D × b(r), D ⊗ Z]`` where ``D`` are the arm dummies (reference: arm 0)
   and ``b(r) = (r, clip(r, -1, 1))`` a saturating basis of the prognostic score
   (benefit rising with risk, then levelling off). ``D`` and ``D × b(r)`` are
   penalised lightly (``modifier_penalty``), the full ``D ⊗ Z`` interactions more
   (``interaction_penalty``), so effect modification must earn its place.

Confounding by measured covariates is handled by outcome regression (all patients,
adjusted for ``Z``); the same model gives each patient's RFS curve under each arm.
"""

from __future__ import annotations

import numpy as np

from hccstrat.exceptions import ModelError
from hccstrat.models._base import survival_at

__all__ = ["InteractionCox"]


def _basis(r: np.ndarray) -> np.ndarray:
    return np.column_stack([r, np.clip(r, -1.0, 1.0)])


class InteractionCox:
    """Per-arm RFS curves from one penalised Cox model with arm interactions.

    Parameters
    ----------
    n_arms : int
        Number of arms (arm 0 is the reference).
    times : ndarray
        Grid of the curves (months).
    alpha : float
        Elastic-net penalty.
    l1_ratio : float
        Elastic-net mixing.
    modifier_penalty, interaction_penalty : float
        Penalty factors of the arm × prognostic-score terms and of the arm × feature
        interactions (main effects of the features have factor 1).
    """

    def __init__(
        self,
        n_arms: int,
        times: np.ndarray,
        *,
        alpha: float = 0.01,
        l1_ratio: float = 0.5,
        modifier_penalty: float = 0.1,
        interaction_penalty: float = 1.0,
    ) -> None:
        self.n_arms = n_arms
        self.times = times
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.modifier_penalty = modifier_penalty
        self.interaction_penalty = interaction_penalty

    def _dummies(self, arm: np.ndarray) -> np.ndarray:
        return np.eye(self.n_arms)[arm][:, 1:]

    def _design(self, Z: np.ndarray, D: np.ndarray) -> np.ndarray:
        rs = (Z @ self.prog_coef_ - self.r_mean_) / self.r_sd_
        B = _basis(rs)
        parts = [Z, D]
        parts += [D[:, [j]] * B for j in range(D.shape[1])]
        parts += [D[:, [j]] * Z for j in range(D.shape[1])]
        return np.hstack(parts)

    def fit(self, Z: np.ndarray, y: np.ndarray, arm: np.ndarray) -> InteractionCox:
        """Fit on features ``Z`` [n, p], RFS target ``y`` and arm codes ``arm``."""
        from hccstrat.models._coxnet import StableCoxnet

        k = self.n_arms - 1
        p = Z.shape[1]
        D = self._dummies(arm)
        try:
            prog = StableCoxnet(
                l1_ratio=self.l1_ratio,
                alphas=[self.alpha],
                penalty_factor=np.r_[np.ones(p), np.zeros(k)],
            ).fit(np.hstack([Z, D]), y)
            self.prog_coef_ = np.asarray(prog.coef_)[:p, -1]
            r = Z @ self.prog_coef_
            self.r_mean_ = float(r.mean())
            self.r_sd_ = float(r.std()) or 1.0
            pf = np.r_[
                np.ones(p),
                np.full(k, 1e-3),
                np.full(2 * k, self.modifier_penalty),
                np.full(p * k, self.interaction_penalty),
            ]
            self.model_ = StableCoxnet(
                l1_ratio=self.l1_ratio,
                alphas=[self.alpha],
                penalty_factor=pf,
                fit_baseline_model=True,
            ).fit(self._design(Z, D), y)
        except (ArithmeticError, ValueError, ModelError) as err:
            raise ModelError(
                f"the interaction Cox model of the treatment-benefit S-learner failed: {err}",
                hint="increase the penalty (benefit_alpha) or check the arms' sample sizes",
            ) from err
        return self

    def curves(self, Z: np.ndarray) -> np.ndarray:
        """RFS curves [n, A, T] under each arm."""
        out = []
        for a in range(self.n_arms):
            D = self._dummies(np.full(len(Z), a))
            out.append(survival_at(self.model_, self._design(Z, D), self.times))
        return np.stack(out, axis=1)
