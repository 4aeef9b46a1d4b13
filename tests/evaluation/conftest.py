"""Synthetic survival data with a known linear predictor (exponential times)."""

from __future__ import annotations

import numpy as np
import pytest

from hccstrat.survival import make_surv


def _simulate(
    n: int, seed: int = 0, *, base: float = 0.02, cens_max: float = 60.0, beta: float = 1.0
):
    """x ~ N(0,1); hazard base*exp(beta x); uniform censoring. Returns (y, x, true 24-m risk)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    lam = base * np.exp(beta * x)
    t = rng.exponential(1 / lam)
    c = rng.uniform(0, cens_max, size=n)
    y = make_surv(t <= c, np.minimum(t, c))
    return y, x, 1 - np.exp(-lam * 24), t


@pytest.fixture(scope="session")
def simulate():
    """The simulator (a function of n, seed, ...)."""
    return _simulate


@pytest.fixture(scope="module")
def data():
    return _simulate(2000, seed=1)
