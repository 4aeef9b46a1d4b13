"""Fixtures of the model tests: a seeded toy cohort with image-feature proxies."""

from __future__ import annotations

import pytest
from _models_toy import make_image_feature_proxies, toy_cohort

from hccstrat.models import join_feature_tables


@pytest.fixture(scope="session")
def cohort():
    """600 patients, 3 centres."""
    return toy_cohort(600, 3, seed=7)


@pytest.fixture(scope="session")
def wide(cohort):
    """Clinical table joined with radiomic-like and TIME-like proxy features."""
    return join_feature_tables(cohort.clinical, make_image_feature_proxies(cohort.latent, seed=1))
