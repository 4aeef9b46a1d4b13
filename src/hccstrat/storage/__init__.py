"""Registry storage: SQLAlchemy 2 models, repositories, audit chain, migrations.

Typical use::

    from hccstrat.storage import make_engine, make_sessionmaker, migrate
    engine = make_engine("sqlite:///data/registry.sqlite")
    migrate(engine)
    Session = make_sessionmaker(engine)
"""

from __future__ import annotations

from hccstrat.storage.audit import AuditVerification, append_event, verify_chain
from hccstrat.storage.engine import default_url, make_engine, make_sessionmaker, migrate
from hccstrat.storage.repositories import ConflictError, RecordNotFoundError, Scope

__all__ = [
    "AuditVerification",
    "ConflictError",
    "RecordNotFoundError",
    "Scope",
    "append_event",
    "default_url",
    "make_engine",
    "make_sessionmaker",
    "migrate",
    "verify_chain",
]
