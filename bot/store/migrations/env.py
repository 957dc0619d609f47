"""Alembic environment for the ghostwrite store.

Normally run by `bot.store.db.migrate`, which passes an open connection inside a transaction in
`config.attributes["connection"]`. For development (`alembic -c bot/store/alembic.ini revision
--autogenerate -m ...`) it connects to the URL from `GHOSTWRITE_DATABASE_URL` or the default file.

SQLite migrations use batch mode (`render_as_batch`): SQLite's ALTER TABLE cannot change or drop
columns, so Alembic rebuilds the table. A rebuild drops the table's triggers: a migration that
rebuilds `generations` must recreate the FTS triggers (see 0002). The FTS objects live outside the
models, so autogenerate is told to leave them alone (`include_object`).
"""

from __future__ import annotations

from alembic import context

from bot.store.db import include_object
from bot.store.models import Base


def _configure(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=include_object,
    )


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    from bot.store.db import Database

    db = Database()
    try:
        with db.engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
            conn.commit()
    finally:
        db.dispose()


if context.is_offline_mode():
    raise SystemExit("ghostwrite migrations run against a live database only")
run_migrations_online()
