"""Alembic's environment: runs migrations on the connection `coordinator_stub.db.migrate` hands
over (so SQLite gets the coordinator's PRAGMAs and PostgreSQL its advisory lock), or on an engine
of its own when alembic is run by hand (`alembic -x url=... upgrade head` is not needed: use
`aitbc-coordinator migrate`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from coordinator_stub.db.models import Base

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things: batch mode copies the table, so later revisions
        # read the same on both engines.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as own:
        _run(own)
    engine.dispose()
