"""StableCoxnet: the single-penalty elastic-net Cox survives wide tables."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.linear_model import CoxnetSurvivalAnalysis
from sksurv.util import Surv

from hccstrat.exceptions import ModelError
from hccstrat.models._base import concordance
from hccstrat.models._coxnet import StableCoxnet


def _wide(seed: int, n: int = 60, p: int = 100):
    """As many features as patients, a few heavy-tailed, two of them prognostic."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    X[:, :5] = rng.exponential(size=(n, 5)) ** 2
    X = (X - X.mean(0)) / X.std(0)
    t = rng.exponential(np.exp(-(X[:, 0] - X[:, 1])))
    c = rng.exponential(2.0, n)
    return X, Surv.from_arrays(t <= c, np.minimum(t, c))


def test_falls_back_to_a_path_ending_at_the_same_penalty():
    X, y = _wide(0)
    with pytest.raises(ArithmeticError):  # what the plain single-penalty fit does here
        CoxnetSurvivalAnalysis(l1_ratio=0.5, alphas=[0.02]).fit(X, y)
    m = StableCoxnet(l1_ratio=0.5, alphas=[0.02], fit_baseline_model=True).fit(X, y)
    assert m.path_fallback_ and np.isclose(m.alphas_[-1], 0.02) and m.alphas == [0.02]
    assert m.alphas_[0] > 0.02 and np.all(np.diff(m.alphas_) < 0)
    assert concordance(y, m.predict(X)) > 0.8  # the prognostic pair was found
    assert m.predict_survival_function(X[:2])[0].y.min() >= 0


def test_no_fallback_when_the_direct_fit_converges():
    X, y = _wide(3)
    direct = CoxnetSurvivalAnalysis(l1_ratio=0.5, alphas=[0.02]).fit(X, y)
    m = StableCoxnet(l1_ratio=0.5, alphas=[0.02]).fit(X, y)
    assert not m.path_fallback_
    np.testing.assert_allclose(m.coef_, direct.coef_)


def test_needs_exactly_one_penalty():
    X, y = _wide(3)
    with pytest.raises(ModelError, match="exactly one penalty"):
        StableCoxnet(alphas=[0.1, 0.01]).fit(X, y)


def test_an_exploded_fit_without_error_is_refitted():
    """The direct fit may stop without an error at coefficients that overflow exp (seen
    on a POST model with 104 features and 55 patients: survival came out NaN)."""
    X, y = _wide(1)
    direct = CoxnetSurvivalAnalysis(l1_ratio=0.5, alphas=[0.02]).fit(X, y)
    assert np.ptp(X @ direct.coef_[:, -1]) > 500  # log hazard ratios in the hundreds
    m = StableCoxnet(l1_ratio=0.5, alphas=[0.02]).fit(X, y)
    assert m.path_fallback_ and np.isclose(m.alphas_[-1], 0.02)
    assert np.ptp(X @ m.coef_[:, -1]) < 30 and np.abs(m.coef_[:, -1]).max() < 3
