"""Throw-away databases for tests and benchmarks.

``HCCSTRAT_TEST_POSTGRES_URL`` names a PostgreSQL server and an account allowed to
create databases (for example ``postgresql://hccstrat:hccstrat@127.0.0.1:5432/postgres``);
:func:`temporary_database` creates a fresh database there and drops it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["POSTGRES_ENV", "postgres_admin_url", "temporary_database"]

#: environment variable naming the PostgreSQL server used by the tests
POSTGRES_ENV = "HCCSTRAT_TEST_POSTGRES_URL"


def postgres_admin_url() -> str | None:
    """The URL in ``HCCSTRAT_TEST_POSTGRES_URL``, or None when unset."""
    return os.environ.get(POSTGRES_ENV) or None


@contextlib.contextmanager
def temporary_database(
    backend: str, tmp_dir: str | Path, *, admin_url: str | None = None
) -> Iterator[str]:
    """Yield the URL of an empty database, removed on exit.

    Parameters
    ----------
    backend : {"sqlite", "postgresql"}
        Kind of database.
    tmp_dir : path-like
        Folder for the SQLite file.
    admin_url : str, optional
        PostgreSQL server and account allowed to create databases; default
        ``HCCSTRAT_TEST_POSTGRES_URL``.
    """
    if backend == "sqlite":
        yield f"sqlite:///{Path(tmp_dir).resolve() / 'registry.sqlite'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from hccstrat.storage.engine import normalise_url

    admin = admin_url or postgres_admin_url()
    if admin is None:
        raise RuntimeError(f"{POSTGRES_ENV} is not set")
    admin = normalise_url(admin)
    name = "hcc_t_" + secrets.token_hex(6)
    eng = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with eng.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        eng.dispose()
