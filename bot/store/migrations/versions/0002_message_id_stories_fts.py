"""generations.message_id, stories, and full-text search over prompts and outputs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

SQLite: an FTS5 external-content table over generations(prompt, output), kept in sync by triggers
(it stores only the index; the text stays in `generations`) and filled from the existing rows.
PostgreSQL: a GIN index on the same `to_tsvector('simple', ...)` expression the store queries with.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)

SQLITE_FTS = [
    """CREATE VIRTUAL TABLE generations_fts USING fts5(
           prompt, output, content='generations', content_rowid='id')""",
    """CREATE TRIGGER generations_fts_insert AFTER INSERT ON generations BEGIN
           INSERT INTO generations_fts(rowid, prompt, output)
           VALUES (new.id, new.prompt, new.output);
       END""",
    """CREATE TRIGGER generations_fts_delete AFTER DELETE ON generations BEGIN
           INSERT INTO generations_fts(generations_fts, rowid, prompt, output)
           VALUES ('delete', old.id, old.prompt, old.output);
       END""",
    """CREATE TRIGGER generations_fts_update AFTER UPDATE OF prompt, output ON generations BEGIN
           INSERT INTO generations_fts(generations_fts, rowid, prompt, output)
           VALUES ('delete', old.id, old.prompt, old.output);
           INSERT INTO generations_fts(rowid, prompt, output)
           VALUES (new.id, new.prompt, new.output);
       END""",
    "INSERT INTO generations_fts(generations_fts) VALUES ('rebuild')",
]

PG_FTS = """CREATE INDEX ix_generations_fts ON generations USING gin (
    to_tsvector('simple', coalesce(prompt, '') || ' ' || coalesce(output, '')))"""


def upgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("message_id", sa.String(64)))
        batch.create_index("ix_generations_message_id", ["message_id"])

    op.create_table(
        "stories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.String(64)),
        sa.Column("channel_id", sa.String(64)),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("created_by", sa.String(64)),
        sa.PrimaryKeyConstraint("id", name="pk_stories"),
    )
    op.create_index("ix_stories_channel", "stories", ["guild_id", "channel_id"])
    op.create_index("ix_stories_created_by", "stories", ["created_by"])
    op.create_index(
        "uq_stories_active_channel",
        "stories",
        ["guild_id", "channel_id"],
        unique=True,
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute(PG_FTS)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS generations_fts_{name}")
        op.execute("DROP TABLE IF EXISTS generations_fts")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_generations_fts")
    op.drop_table("stories")
    with op.batch_alter_table("generations") as batch:
        batch.drop_index("ix_generations_message_id")
        batch.drop_column("message_id")
