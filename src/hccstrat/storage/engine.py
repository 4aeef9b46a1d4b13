"""Engine and session set-up, and programmatic Alembic migrations.

SQLite (file, WAL journal, foreign keys on, busy timeout) is the embedded default;
PostgreSQL URLs (``postgresql://`` or ``postgresql+psycopg://``) are supported.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from hccstrat.exceptions import ConfigError

__all__ = ["default_url", "make_engine", "make_sessionmaker", "migrate", "normalise_url"]

log = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def default_url(data_dir: str | Path) -> str:
    """SQLite URL of the registry file in ``data_dir``."""
    path = Path(data_dir).resolve() / "registry.sqlite"
    return f"sqlite:///{path}"


def normalise_url(url: str) -> str:
    """Map ``postgresql://`` to the psycopg 3 driver; check the scheme.

    Raises
    ------
    ConfigError
        When the URL is malformed or names an unsupported database.
    """
    try:
        parsed = make_url(url)
    except Exception as err:  # sqlalchemy.exc.ArgumentError
        raise ConfigError(
            f"database URL {url!r} cannot be parsed",
            hint="use sqlite:///path/registry.sqlite or postgresql://user@host/dbname",
        ) from err
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"database backend {backend!r} is not supported",
            hint="use SQLite (default) or PostgreSQL",
        )
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine; SQLite connections get WAL, foreign keys and a busy timeout.

    Parameters
    ----------
    url : str
        SQLAlchemy database URL.
    echo : bool
        Log SQL (never enable in production: statements may carry data).
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=32,
            max_overflow=96,  # SQLite connections are cheap; requests may queue for threads
        )
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, echo=echo, pool_size=20, max_overflow=60, pool_pre_ping=True)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Session factory bound to ``engine`` (objects stay usable after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database schema to ``revision`` with Alembic (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    log.info("database schema at revision %s", revision)
