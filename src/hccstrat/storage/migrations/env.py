"""Alembic environment of the hccstrat registry.

Migrations are run programmatically by :func:`hccstrat.storage.engine.migrate`, which
passes an open connection in ``config.attributes["connection"]``; running ``alembic``
from the command line with ``-x url=...`` also works.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from hccstrat.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # command-line use
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
