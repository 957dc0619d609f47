"""What the store keeps for Discord's second round (migration 0005): members' privacy choices, cooldowns
and locks several bot processes share, and the thread a story runs in.

- `member_prefs`: one row per member and server (`guild_id` '' = every server): `ignored` (/ignoreme: the
  bot neither reads nor stores what they write) and `opted_in` (/optin: their messages may go into a
  corpus built from the channel).
- `cooldowns`: a sliding window of a key's recent uses (wall-clock seconds), checked and counted in one
  write transaction, so two processes (two shards) count the same member once.
- `locks`: a named lease (`holder`, `expires_at`): one retraining job across every process on the
  database; a holder that dies without releasing it loses it when the lease expires.
- `story_threads`: the thread a story runs in, its parent channel and when the bot continues (`every`
  message or on `mention` / `/story add`).

`StoreMembers` is a base class of `bot.store.Store`; it needs `self._db` and `_dialect_insert`.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, UniqueConstraint, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from bot.store import models as m
from bot.store.db import Database, StoreError
from bot.store.records import Feedback, Generation, Story
from bot.store.storable import StorableString

EVERYWHERE = ""  # member_prefs.guild_id of a choice that holds in every server
STORY_MODES = ("every", "mention")


class MemberPrefs(m.Base):
    __tablename__ = "member_prefs"
    __table_args__ = (UniqueConstraint("user_id", "guild_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(StorableString(64), index=True)
    guild_id: Mapped[str] = mapped_column(StorableString(64), default=EVERYWHERE)
    ignored: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_in: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=m.utcnow, onupdate=m.utcnow)


class Cooldown(m.Base):
    __tablename__ = "cooldowns"

    key: Mapped[str] = mapped_column(StorableString(200), primary_key=True)
    hits: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=m.utcnow)


class Lock(m.Base):
    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(StorableString(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(StorableString(200))
    expires_at: Mapped[datetime | None]


class StoryThread(m.Base):
    __tablename__ = "story_threads"

    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True)
    thread_id: Mapped[str | None] = mapped_column(StorableString(64), index=True)
    parent_channel_id: Mapped[str | None] = mapped_column(StorableString(64))
    mode: Mapped[str] = mapped_column(StorableString(16), default="every")


class StoreMembers:
    _db: Database

    def _dialect_insert(self) -> Any: ...  # (Store's)

    # ------------------------------------------------------------------ member choices

    def set_member_pref(self, user_id: str | int, guild_id: str | int | None, **flags: bool) -> dict[str, bool]:
        """Set `ignored` and/or `opted_in` for a member in one server (None: every server)."""
        unknown = set(flags) - {"ignored", "opted_in"}
        if unknown:
            raise StoreError(f"member preferences have no field(s) {', '.join(sorted(unknown))}")
        uid, gid = str(user_id), EVERYWHERE if guild_id is None else str(guild_id)

        def tx(s: Session) -> dict[str, bool]:
            s.execute(self._dialect_insert()(MemberPrefs).values(user_id=uid, guild_id=gid, updated_at=m.utcnow(),
                                                                 ignored=False, opted_in=False)
                      .on_conflict_do_nothing(index_elements=["user_id", "guild_id"]))
            row = s.scalars(select(MemberPrefs).where(MemberPrefs.user_id == uid, MemberPrefs.guild_id == gid)
                            .with_for_update()).one()
            for key, value in flags.items():
                setattr(row, key, bool(value))
            row.updated_at = m.utcnow()
            return {"ignored": row.ignored, "opted_in": row.opted_in}

        return self._db.write(tx)

    def withdraw_opt_ins(self, user_id: str | int, dry_run: bool = False) -> int:
        """/forget: the member's opt-ins end everywhere (an /ignoreme stays: it is what they asked for).
        Returns how many there were."""
        where = (MemberPrefs.user_id == str(user_id), MemberPrefs.opted_in.is_(True))

        def tx(s: Session) -> int:
            rows = list(s.scalars(select(MemberPrefs).where(*where)))
            if not dry_run:
                for row in rows:
                    row.opted_in, row.updated_at = False, m.utcnow()
            return len(rows)

        return self._db.write(tx)

    def is_ignored(self, user_id: str | int) -> bool:
        stmt = select(MemberPrefs.ignored).where(MemberPrefs.user_id == str(user_id), MemberPrefs.guild_id == EVERYWHERE)
        return bool(self._db.read(lambda s: s.scalar(stmt)))

    def opted_in(self, guild_id: str | int) -> set[str]:
        """The members of a server who opted in (and are not ignored)."""
        stmt = select(MemberPrefs.user_id).where(MemberPrefs.guild_id == str(guild_id), MemberPrefs.opted_in.is_(True))
        ignored = select(MemberPrefs.user_id).where(MemberPrefs.guild_id == EVERYWHERE, MemberPrefs.ignored.is_(True))
        return self._db.read(lambda s: set(s.scalars(stmt)) - set(s.scalars(ignored)))

    def user_data(self, user_id: str | int) -> dict[str, Any]:
        """Everything stored about one member, as JSON-ready dicts (for /mydata)."""
        uid = str(user_id)

        def tx(s: Session) -> dict[str, Any]:
            gens = s.scalars(select(m.Generation).where(m.Generation.user_id == uid).order_by(m.Generation.id))
            votes = s.scalars(select(m.Feedback).where(m.Feedback.user_id == uid).order_by(m.Feedback.id))
            stories = s.scalars(select(m.Story).where(m.Story.created_by == uid).order_by(m.Story.id))
            prefs = s.scalars(select(MemberPrefs).where(MemberPrefs.user_id == uid).order_by(MemberPrefs.id))
            runs = s.scalars(select(m.TrainingRun).where(m.TrainingRun.requested_by == uid))
            return {
                "user_id": uid,
                "generations": [Generation.from_row(r).to_dict() for r in gens],
                "votes": [Feedback.from_row(r).to_dict() for r in votes],
                "stories_started": [Story.from_row(r).to_dict() for r in stories],
                "preferences": [{"guild_id": p.guild_id or None, "ignored": p.ignored, "opted_in": p.opted_in,
                                 "updated_at": p.updated_at.isoformat()} for p in prefs],
                "training_runs_requested": [r.id for r in runs],
            }

        return self._db.read(tx)

    # ------------------------------------------------------------------ cooldowns

    def hit_cooldown(self, key: str, rate: int, per: float, now: float | None = None) -> float | None:
        """Count one use of `key` unless it was used `rate` times in the last `per` seconds; then return how
        many seconds remain (nothing counted). One write transaction: every process sees the same count."""
        if per <= 0:
            return None
        t = time.time() if now is None else now

        def tx(s: Session) -> float | None:
            s.execute(self._dialect_insert()(Cooldown).values(key=key, hits={"t": []}, updated_at=m.utcnow())
                      .on_conflict_do_nothing(index_elements=["key"]))
            row = s.scalars(select(Cooldown).where(Cooldown.key == key).with_for_update()).one()
            hits = [h for h in (row.hits or {}).get("t", []) if isinstance(h, (int, float)) and t - h < per]
            if len(hits) >= max(1, rate):
                return max(0.0, per - (t - min(hits)))
            row.hits = {"t": hits + [t]}
            row.updated_at = m.utcnow()
            return None

        return self._db.write(tx)

    def reset_cooldown(self, key: str) -> None:
        self._db.write(lambda s: s.execute(delete(Cooldown).where(Cooldown.key == key)))

    # ------------------------------------------------------------------ locks

    def acquire_lock(self, name: str, holder: str, ttl: float) -> str | None:
        """Take (or renew) the lease `name` for `ttl` seconds. Returns None when taken, else the holder
        that has it."""
        def tx(s: Session) -> str | None:
            now = m.utcnow()
            s.execute(self._dialect_insert()(Lock).values(name=name, holder=None, expires_at=None)
                      .on_conflict_do_nothing(index_elements=["name"]))
            row = s.scalars(select(Lock).where(Lock.name == name).with_for_update()).one()
            if row.holder not in (None, holder) and row.expires_at is not None and row.expires_at > now:
                return row.holder
            row.holder, row.expires_at = holder, now + timedelta(seconds=ttl)
            return None

        return self._db.write(tx)

    def release_lock(self, name: str, holder: str) -> None:
        self._db.write(lambda s: s.execute(delete(Lock).where(Lock.name == name, Lock.holder == holder)))

    # ------------------------------------------------------------------ story threads

    def set_story_thread(self, story_id: int, thread_id: str | int | None, parent_channel_id: str | int | None,
                         mode: str = "every") -> None:
        if mode not in STORY_MODES:
            raise StoreError(f"a story's mode is one of {', '.join(STORY_MODES)}, not {mode!r}")

        def tx(s: Session) -> None:
            row = s.get(StoryThread, story_id) or StoryThread(story_id=story_id)
            row.thread_id = None if thread_id is None else str(thread_id)
            row.parent_channel_id = None if parent_channel_id is None else str(parent_channel_id)
            row.mode = mode
            s.add(row)

        self._db.write(tx)

    def story_thread(self, story_id: int) -> dict[str, Any] | None:
        def tx(s: Session) -> dict[str, Any] | None:
            row = s.get(StoryThread, story_id)
            return None if row is None else {"thread_id": row.thread_id, "parent_channel_id": row.parent_channel_id,
                                             "mode": row.mode}

        return self._db.read(tx)
