"""Initial schema: generations (without message_id), feedback, training runs, settings.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "generations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(64)),
        sa.Column("user_name", sa.String(200)),
        sa.Column("guild_id", sa.String(64)),
        sa.Column("channel_id", sa.String(64)),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("model_version", sa.Integer()),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("params", JSON),
        sa.Column("tokens_in", sa.Integer()),
        sa.Column("tokens_out", sa.Integer()),
        sa.Column("latency_ms", sa.Integer()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column(
            "parent_id",
            sa.Integer(),
            sa.ForeignKey(
                "generations.id",
                ondelete="SET NULL",
                name="fk_generations_parent_id_generations",
            ),
        ),
        sqlite_autoincrement=True,
    )
    for column in ("created_at", "source", "user_id", "model", "status", "parent_id"):
        op.create_index(f"ix_generations_{column}", "generations", [column])

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("emoji", sa.String(64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            ondelete="CASCADE",
            name="fk_feedback_generation_id_generations",
        ),
        sa.UniqueConstraint(
            "generation_id", "user_id", "emoji", name="uq_feedback_generation_id_user_id_emoji"
        ),
    )
    op.create_index("ix_feedback_generation_id", "feedback", ["generation_id"])
    op.create_index("ix_feedback_user_id", "feedback", ["user_id"])

    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("corpus", sa.Text()),
        sa.Column("base_model", sa.String(200)),
        sa.Column("base_version", sa.Integer()),
        sa.Column("new_version", sa.Integer()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", TIME),
        sa.Column("finished_at", TIME),
        sa.Column("duration_s", sa.Float()),
        sa.Column("metrics", JSON),
        sa.Column("val_bpc", sa.Float()),
        sa.Column("error", sa.Text()),
        sa.Column("requested_by", sa.String(64)),
        sa.Column("progress", JSON),
        sa.PrimaryKeyConstraint("id", name="pk_training_runs"),
    )
    op.create_index("ix_training_runs_model", "training_runs", ["model"])
    op.create_index("ix_training_runs_status", "training_runs", ["status"])

    op.create_table(
        "settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope_kind", sa.String(16), nullable=False),
        sa.Column("scope_id", sa.String(64), nullable=False),
        sa.Column("guild_id", sa.String(64)),
        sa.Column("values", JSON, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_settings"),
        sa.UniqueConstraint("scope_kind", "scope_id", name="uq_settings_scope_kind_scope_id"),
    )
    op.create_index("ix_settings_guild_id", "settings", ["guild_id"])


def downgrade() -> None:
    op.drop_table("settings")
    op.drop_table("training_runs")
    op.drop_table("feedback")
    op.drop_table("generations")
