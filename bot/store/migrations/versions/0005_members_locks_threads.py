"""Discord's second round: member_prefs (/ignoreme, /optin), cooldowns and locks shared by every bot
process on the database, story_threads (the thread a story runs in and when the bot continues).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

New tables only: nothing existing is rebuilt (the search triggers of 0002 stay).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "member_prefs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("guild_id", sa.String(64), nullable=False),
        sa.Column("ignored", sa.Boolean(), nullable=False),
        sa.Column("opted_in", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_member_prefs"),
        sa.UniqueConstraint("user_id", "guild_id", name="uq_member_prefs_user_id_guild_id"),
    )
    op.create_index("ix_member_prefs_user_id", "member_prefs", ["user_id"])
    op.create_table(
        "cooldowns",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("hits", JSON, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_cooldowns"),
    )
    op.create_table(
        "locks",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(200)),
        sa.Column("expires_at", TIME),
        sa.PrimaryKeyConstraint("name", name="pk_locks"),
    )
    op.create_table(
        "story_threads",
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("thread_id", sa.String(64)),
        sa.Column("parent_channel_id", sa.String(64)),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(["story_id"], ["stories.id"], name="fk_story_threads_story_id_stories",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("story_id", name="pk_story_threads"),
    )
    op.create_index("ix_story_threads_thread_id", "story_threads", ["thread_id"])


def downgrade() -> None:
    op.drop_table("story_threads")
    op.drop_table("locks")
    op.drop_table("cooldowns")
    op.drop_index("ix_member_prefs_user_id", table_name="member_prefs")
    op.drop_table("member_prefs")
