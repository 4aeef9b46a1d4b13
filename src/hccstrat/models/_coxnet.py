"""Elastic-net Cox at one penalty, robust to wide tables.

scikit-survival's :class:`~sksurv.linear_model.CoxnetSurvivalAnalysis` fitted at a
single small ``alpha`` starts from zero coefficients and can diverge ("weights are too
large") when there are about as many features as patients — a POST model with ~100
radiomic and TIME features on ~80 patients did. glmnet's remedy is a warm-started
path: start at the smallest penalty that keeps every coefficient at zero and walk
down to the target. :class:`StableCoxnet` fits the single penalty as asked and, only
when that diverges (an error, or coefficients that exploded without one: log hazard
ratios in the hundreds, NaN survival), refits along such a path ending at the same
penalty, so its predictions are always those of the requested ``alpha``. The problem
is convex, so where both converge they agree; the path is the fallback only because
its baseline hazards (one per penalty) make it about ten times slower.
"""

from __future__ import annotations

import numpy as np
from sksurv.linear_model import CoxnetSurvivalAnalysis

from hccstrat.exceptions import ModelError

__all__ = ["StableCoxnet"]

_PATH_STEPS = 30
#: Largest spread of the training linear predictor (log hazard ratio between two
#: patients) a converged fit can have; a direct fit that stopped at an exploded point
#: (spread in the hundreds, survival NaN after exp overflow) is refitted along a path;
#: converged fits of heavily over-parameterised tables reach about 20-30.
_MAX_LP_SPREAD = 100.0


def _sane(model: CoxnetSurvivalAnalysis, X) -> bool:
    lp = np.asarray(X, float) @ np.asarray(model.coef_)[:, -1]
    return bool(np.all(np.isfinite(lp)) and np.ptp(lp) <= _MAX_LP_SPREAD)


class StableCoxnet(CoxnetSurvivalAnalysis):
    """:class:`~sksurv.linear_model.CoxnetSurvivalAnalysis` with a warm-start fallback.

    Parameters are those of the parent; ``alphas`` must hold one penalty (the
    model's). Attribute ``path_fallback_`` says whether the fallback was needed.
    """

    def fit(self, X, y):
        """Fit at ``alphas[-1]``; on divergence, along a path from the largest useful penalty."""
        if self.alphas is None or len(self.alphas) != 1:
            raise ModelError(
                f"StableCoxnet needs exactly one penalty, got alphas={self.alphas}",
                hint="use CoxnetSurvivalAnalysis for a whole regularisation path",
            )
        target = float(self.alphas[0])
        try:
            super().fit(X, y)
            if _sane(self, X):
                self.path_fallback_ = False
                return self
        except ArithmeticError:
            pass
        params = self.get_params()
        try:
            # the largest useful penalty (all coefficients zero) from a two-point path
            top = float(CoxnetSurvivalAnalysis(
                l1_ratio=self.l1_ratio, n_alphas=2, alpha_min_ratio=0.5,
                penalty_factor=self.penalty_factor, normalize=self.normalize,
                tol=self.tol, max_iter=self.max_iter,
            ).fit(X, y).alphas_[0])
            path = np.geomspace(top, target, _PATH_STEPS) if top > target else [target]
            self.set_params(alphas=list(path))
            super().fit(X, y)
        except ArithmeticError as err:
            raise ModelError(
                f"the elastic-net Cox model diverged at alpha={target} even along a "
                f"warm-started path ({X.shape[1]} features, {X.shape[0]} patients)",
                hint="raise alpha, or use fewer features or more patients",
            ) from err
        finally:
            self.set_params(**params)
        if not np.isclose(self.alphas_[-1], target) or not _sane(self, X):
            raise ModelError(
                f"the elastic-net Cox path ended at alpha={self.alphas_[-1]:.4g} (asked "
                f"{target}) or with exploded coefficients: the fit saturated",
                hint="raise alpha, or use fewer features or more patients",
            )
        self.path_fallback_ = True
        return self
