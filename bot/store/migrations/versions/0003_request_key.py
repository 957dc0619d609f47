"""generations.request_key: one key per generation, unique, so a replayed write stores it once.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

The service gives every generation a random key before writing it; a row written again with the same
key (a spooled row flushed by two processes, or replayed after a crash between the commit and the
removal of its spool file) is not stored twice. Existing rows have no key (NULL; NULLs never collide).
SQLite: adding a column and an index needs no table rebuild, so the search triggers of 0002 stay.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("request_key", sa.String(64)))
        batch.create_index("ix_generations_request_key", ["request_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_generations_request_key", table_name="generations")
    # SQLite (3.35+) drops the column in place; a batch rebuild would drop the search triggers
    op.execute("ALTER TABLE generations DROP COLUMN request_key")
