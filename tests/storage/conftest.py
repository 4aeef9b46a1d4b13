"""Database fixtures: every storage test runs on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import pytest

from hccstrat.storage.testing import POSTGRES_ENV, postgres_admin_url, temporary_database


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db_url(request, tmp_path):
    """URL of an empty database (SQLite file, or a throw-away PostgreSQL database)."""
    if request.param == "postgresql" and postgres_admin_url() is None:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}=postgresql://user:pw@127.0.0.1/postgres")
    with temporary_database(request.param, tmp_path) as url:
        yield url
