"""The tables, as SQLAlchemy 2 typed models.

These classes describe the schema at the newest migration (`migrations/versions/`). The rest of the
program never sees them: `bot.store.Store` turns rows into plain dataclasses (`records.py`).

External ids (Discord users, guilds, channels, messages; local user names) are strings: Discord
snowflakes do not fit every database's integer type, and a terminal user is a name, not a number.
Every time is stored in UTC and comes back as an aware `datetime` in UTC. Text and JSON columns make
their values storable on every database (NUL and lone surrogates become U+FFFD: `storable.py`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.store.storable import StorableJSON, StorableString, StorableText

SOURCES = ("cli", "repl", "discord", "api", "llm")  # api: `ghostwrite serve`; llm: the llm plugin
GENERATION_STATUSES = ("running", "complete", "interrupted", "error")
FINISH_REASONS = ("stop", "length", "interrupted", "error")  # why a continuation's text ended
RUN_STATUSES = ("queued", "running", "complete", "failed", "cancelled")
SCOPE_KINDS = ("guild", "channel")

# Names for constraints and indexes, so that later migrations (batch mode on SQLite) can refer to them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC `datetime` on the Python side on every database.

    Naive values are taken to be UTC already. SQLite keeps the UTC wall time as text (so comparisons
    work); PostgreSQL keeps a `timestamptz`."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


JSONType = StorableJSON()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class Generation(Base):
    """One continuation: the request, its result and how it went."""

    __tablename__ = "generations"
    # AUTOINCREMENT: ids of deleted rows (forget_user) are never handed out again.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    source: Mapped[str] = mapped_column(StorableString(16), index=True)
    user_id: Mapped[str | None] = mapped_column(StorableString(64), index=True)
    user_name: Mapped[str | None] = mapped_column(StorableString(200))
    guild_id: Mapped[str | None] = mapped_column(StorableString(64))
    channel_id: Mapped[str | None] = mapped_column(StorableString(64))
    model: Mapped[str] = mapped_column(StorableString(200), index=True)
    model_version: Mapped[int | None] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(StorableText)
    output: Mapped[str] = mapped_column(StorableText, default="")
    params: Mapped[dict[str, Any] | None]
    tokens_in: Mapped[int | None] = mapped_column(Integer)
    tokens_out: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(StorableString(16), default="running", index=True)
    error: Mapped[str | None] = mapped_column(StorableText)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("generations.id", ondelete="SET NULL"), index=True
    )
    # Added in migration 0002: the Discord message that carries the reply (reactions find it by this).
    message_id: Mapped[str | None] = mapped_column(StorableString(64), index=True)
    # Added in migration 0003: a key the writer gives each generation, so that writing it again (a spooled
    # row replayed after a crash, or flushed by two processes) stores it once.
    request_key: Mapped[str | None] = mapped_column(StorableString(64), unique=True, index=True)
    # Added in migration 0004: why the text ended (FINISH_REASONS); None for rows written before it.
    finish_reason: Mapped[str | None] = mapped_column(StorableString(16))


class Feedback(Base):
    """A vote on a generation: one per user, generation and emoji ('' when there is no emoji)."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("generation_id", "user_id", "emoji"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(
        ForeignKey("generations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(StorableString(64), index=True)
    value: Mapped[int] = mapped_column(Integer)
    emoji: Mapped[str] = mapped_column(StorableString(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingRun(Base):
    """A (re)training job: what it trains from, how it went, what it produced."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    model: Mapped[str] = mapped_column(StorableString(200), index=True)
    corpus: Mapped[str | None] = mapped_column(StorableText)
    base_model: Mapped[str | None] = mapped_column(StorableString(200))
    base_version: Mapped[int | None] = mapped_column(Integer)
    new_version: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(StorableString(16), default="queued", index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any] | None]
    val_bpc: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(StorableText)
    requested_by: Mapped[str | None] = mapped_column(StorableString(64))
    progress: Mapped[dict[str, Any] | None]


class Setting(Base):
    """Discord settings of one guild or one channel (`guild_id` lets a guild list its channels)."""

    __tablename__ = "settings"
    __table_args__ = (UniqueConstraint("scope_kind", "scope_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope_kind: Mapped[str] = mapped_column(StorableString(16))
    scope_id: Mapped[str] = mapped_column(StorableString(64))
    guild_id: Mapped[str | None] = mapped_column(StorableString(64), index=True)
    values: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Story(Base):
    """A channel's running story (migration 0002). At most one active story per channel."""

    __tablename__ = "stories"
    __table_args__ = (Index("ix_stories_channel", "guild_id", "channel_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guild_id: Mapped[str | None] = mapped_column(StorableString(64))
    channel_id: Mapped[str | None] = mapped_column(StorableString(64))
    text: Mapped[str] = mapped_column(StorableText, default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    created_by: Mapped[str | None] = mapped_column(StorableString(64), index=True)


# One active story per channel, enforced by the database (a partial unique index).
Index(
    "uq_stories_active_channel",
    Story.guild_id,
    Story.channel_id,
    unique=True,
    sqlite_where=Story.active,
    postgresql_where=Story.active,
)
