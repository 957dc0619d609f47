"""The smaller parts of the store: training runs, Discord settings and channel stories.

`StoreExtras` is a base class of `bot.store.Store`; it only needs `self._db` (a `db.Database`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.store import models as m
from bot.store.db import Database, StoreError
from bot.store.records import Story, TrainingRun

_RUN_FIELDS = {
    "model", "corpus", "base_model", "base_version", "new_version", "status", "started_at",
    "finished_at", "duration_s", "metrics", "val_bpc", "error", "requested_by", "progress",
}  # fmt: skip
_RUN_DONE = ("complete", "failed", "cancelled")


def _check_run_fields(fields: dict[str, Any]) -> None:
    unknown = set(fields) - _RUN_FIELDS
    if unknown:
        raise StoreError(f"training runs have no field(s) {', '.join(sorted(unknown))}")
    status = fields.get("status")
    if status is not None and status not in m.RUN_STATUSES:
        raise StoreError(f"unknown training status {status!r}; use one of {', '.join(m.RUN_STATUSES)}")


class StoreExtras:
    _db: Database

    # ------------------------------------------------------------------ training runs

    def create_training_run(
        self,
        model: str,
        corpus: str | None = None,
        base_model: str | None = None,
        base_version: int | None = None,
        requested_by: str | int | None = None,
        status: str = "queued",
        **fields: Any,
    ) -> int:
        """A new training run (status `queued` unless given). Returns its id."""
        requester = None if requested_by is None else str(requested_by)
        fields.update(model=model, corpus=corpus, base_model=base_model, base_version=base_version,
                      requested_by=requester, status=status)  # fmt: skip
        _check_run_fields(fields)
        self._stamp_run(fields, None)

        def tx(s: Session) -> int:
            row = m.TrainingRun(**fields)
            s.add(row)
            s.flush()
            return row.id

        return self._db.write(tx)

    def update_training_run(self, run_id: int, **fields: Any) -> TrainingRun:
        """Change a run's fields. Moving to `running` stamps `started_at`; moving to complete,
        failed or cancelled stamps `finished_at` and `duration_s` (unless given). Returns the run."""
        _check_run_fields(fields)

        def tx(s: Session) -> TrainingRun:
            row = s.get(m.TrainingRun, run_id, with_for_update=True)
            if row is None:
                raise StoreError(f"no training run with id {run_id}")
            self._stamp_run(fields, row)
            for key, value in fields.items():
                setattr(row, key, value)
            s.flush()
            return TrainingRun.from_row(row)

        return self._db.write(tx)

    @staticmethod
    def _stamp_run(fields: dict[str, Any], row: m.TrainingRun | None) -> None:
        status = fields.get("status")
        now = m.utcnow()
        if status == "running" and "started_at" not in fields and (row is None or row.started_at is None):
            fields["started_at"] = now
        if status in _RUN_DONE and "finished_at" not in fields:
            fields["finished_at"] = now
        started = fields.get("started_at") or (row.started_at if row is not None else None)
        finished = fields.get("finished_at")
        if finished is not None and started is not None and "duration_s" not in fields:
            fields["duration_s"] = (finished - started).total_seconds()

    def get_training_run(self, run_id: int) -> TrainingRun | None:
        def tx(s: Session) -> TrainingRun | None:
            row = s.get(m.TrainingRun, run_id)
            return TrainingRun.from_row(row) if row else None

        return self._db.read(tx)

    def list_training_runs(self, model: str | None = None, limit: int = 20) -> list[TrainingRun]:
        """Newest first."""
        stmt = select(m.TrainingRun).order_by(m.TrainingRun.id.desc()).limit(limit)
        if model:
            stmt = stmt.where(m.TrainingRun.model == model)
        return self._db.read(lambda s: [TrainingRun.from_row(r) for r in s.scalars(stmt)])

    # ------------------------------------------------------------------ settings

    def get_settings(self, guild_id: str | int | None, channel_id: str | int | None = None) -> dict[str, Any]:
        """The guild's settings with the channel's on top."""

        def tx(s: Session) -> dict[str, Any]:
            merged: dict[str, Any] = {}
            for kind, scope in (("guild", guild_id), ("channel", channel_id)):
                if scope is not None:
                    merged.update(self._settings_row(s, kind, str(scope)))
            return merged

        return self._db.read(tx)

    def set_setting(
        self,
        scope_kind: str,
        scope_id: str | int,
        key: str,
        value: Any,
        guild_id: str | int | None = None,
    ) -> dict[str, Any]:
        """Set one key of a guild's or channel's settings (`value` None removes the key). Give a
        channel's `guild_id` so that `all_settings(guild_id)` lists it. Returns that scope's settings."""
        if scope_kind not in m.SCOPE_KINDS:
            raise StoreError(f"unknown settings scope {scope_kind!r}; use guild or channel")
        scope = str(scope_id)
        guild = scope if scope_kind == "guild" else (None if guild_id is None else str(guild_id))

        def tx(s: Session) -> dict[str, Any]:
            insert = self._dialect_insert()  # type: ignore[attr-defined]
            s.execute(
                insert(m.Setting)
                .values(scope_kind=scope_kind, scope_id=scope, guild_id=guild, values={},
                        updated_at=m.utcnow())  # fmt: skip
                .on_conflict_do_nothing(index_elements=["scope_kind", "scope_id"])
            )
            row = s.scalars(
                select(m.Setting).where(m.Setting.scope_kind == scope_kind, m.Setting.scope_id == scope)
                .with_for_update()
            ).one()
            values = dict(row.values or {})
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
            row.values = values
            if guild is not None:
                row.guild_id = guild
            row.updated_at = m.utcnow()
            return values

        return self._db.write(tx)

    def all_settings(self, guild_id: str | int) -> dict[str, Any]:
        """`{"guild": {...}, "channels": {channel_id: {...}}}` for one guild."""

        def tx(s: Session) -> dict[str, Any]:
            rows = s.scalars(select(m.Setting).where(m.Setting.guild_id == str(guild_id)))
            out: dict[str, Any] = {"guild": {}, "channels": {}}
            for row in rows:
                if row.scope_kind == "guild":
                    out["guild"] = dict(row.values or {})
                else:
                    out["channels"][row.scope_id] = dict(row.values or {})
            return out

        return self._db.read(tx)

    @staticmethod
    def _settings_row(s: Session, kind: str, scope: str) -> dict[str, Any]:
        stmt = select(m.Setting.values).where(m.Setting.scope_kind == kind, m.Setting.scope_id == scope)
        return dict(s.scalar(stmt) or {})

    # ------------------------------------------------------------------ stories

    def active_story(self, guild_id: str | int | None, channel_id: str | int | None) -> Story | None:
        def tx(s: Session) -> Story | None:
            row = s.scalars(self._active_stmt(guild_id, channel_id)).first()
            return Story.from_row(row) if row else None

        return self._db.read(tx)

    def start_story(
        self,
        guild_id: str | int | None,
        channel_id: str | int | None,
        text: str = "",
        created_by: str | int | None = None,
    ) -> int:
        """Begin a channel's story (ending the one running there, if any). Returns its id."""

        def tx(s: Session) -> int:
            now = m.utcnow()
            for old in s.scalars(self._active_stmt(guild_id, channel_id)):
                old.active, old.updated_at = False, now
            s.flush()
            row = m.Story(
                guild_id=None if guild_id is None else str(guild_id),
                channel_id=None if channel_id is None else str(channel_id),
                text=text,
                active=True,
                created_by=None if created_by is None else str(created_by),
            )
            s.add(row)
            s.flush()
            return row.id

        return self._db.write(tx)

    def append_story(self, story_id: int, text: str) -> Story:
        """Add `text` to the end of a story (as is: the caller decides on spaces). Returns it."""

        def tx(s: Session) -> Story:
            result = s.execute(
                update(m.Story)
                .where(m.Story.id == story_id)
                .values(text=m.Story.text + text, updated_at=m.utcnow())
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise StoreError(f"no story with id {story_id}")
            return Story.from_row(s.get_one(m.Story, story_id, populate_existing=True))

        return self._db.write(tx)

    def end_story(self, story_id: int) -> str:
        """Stop a story; returns its text."""

        def tx(s: Session) -> str:
            row = s.get(m.Story, story_id)
            if row is None:
                raise StoreError(f"no story with id {story_id}")
            row.active, row.updated_at = False, m.utcnow()
            return row.text

        return self._db.write(tx)

    def get_story(self, story_id: int) -> Story | None:
        def tx(s: Session) -> Story | None:
            row = s.get(m.Story, story_id)
            return Story.from_row(row) if row else None

        return self._db.read(tx)

    @staticmethod
    def _active_stmt(guild_id: str | int | None, channel_id: str | int | None) -> Any:
        def same(column: Any, value: Any) -> Any:
            return column.is_(None) if value is None else column == str(value)

        return select(m.Story).where(
            same(m.Story.guild_id, guild_id), same(m.Story.channel_id, channel_id), m.Story.active.is_(True)
        )
