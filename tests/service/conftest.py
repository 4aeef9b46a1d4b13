"""Fixtures of the service tests: an app on SQLite (and PostgreSQL when configured)."""

from __future__ import annotations

import pytest

from hccstrat.service.testing import ROLES, ToyScorer, login, seed_accounts
from hccstrat.storage.testing import POSTGRES_ENV, postgres_admin_url, temporary_database


def _make_app(db_url, data_dir, **kw):
    from hccstrat.service import ServiceSettings, create_app

    settings = ServiceSettings(
        data_dir=data_dir,
        db_url=db_url,
        argon2={"time_cost": 1, "memory_kib": 1024, "parallelism": 1},
        scorers={"PRE": ToyScorer()},
        worker_poll_s=0.05,
        **kw,
    )
    return create_app(settings)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "postgresql" and postgres_admin_url() is None:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}=postgresql://user:pw@127.0.0.1/postgres")
    with temporary_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def app_client(db_url, tmp_path):
    """(client, auth headers by username) with seeded centres and accounts."""
    from fastapi.testclient import TestClient

    app = _make_app(db_url, tmp_path / "data")
    with TestClient(app) as client:
        seed_accounts(app)
        heads = {
            u: login(client, u)
            for u in [f"a_{r}" for r in ROLES] + ["b_investigator", "b_radiologist", "b_admin"]
        }
        yield client, heads


@pytest.fixture
def sqlite_app(tmp_path):
    """Factory of apps on one SQLite data folder (for restart tests)."""

    def make(**kw):
        return _make_app(
            f"sqlite:///{tmp_path / 'data' / 'registry.sqlite'}", tmp_path / "data", **kw
        )

    return make
