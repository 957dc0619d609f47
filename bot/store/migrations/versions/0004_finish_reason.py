"""generations.finish_reason: why a continuation ended (stop | length | interrupted | error).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

`status` says whether the request completed; `finish_reason` says why its text ended, as OpenAI's API
reports it: `length` (the requested length or the token cap), `stop` (a stop string, or a banned string
that left nothing to write), `interrupted` (closed or cancelled), `error`. Existing rows have none (NULL).
SQLite: adding a nullable column needs no table rebuild, so the search triggers of 0002 stay.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("finish_reason", sa.String(16)))


def downgrade() -> None:
    # SQLite (3.35+) drops the column in place; a batch rebuild would drop the search triggers
    op.execute("ALTER TABLE generations DROP COLUMN finish_reason")
