"""The store's upkeep: forgetting a user, checking the file, and checking that rows can be written.

`StoreUpkeep` is a base class of `bot.store.Store`; it needs `self._db` (a `db.Database`) and
`self.dialect`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from bot.store import models as m
from bot.store.db import Database, raw_execute


class _Probe(Exception):
    """Ends the probing transaction of `check_writable` with a rollback."""


class StoreUpkeep:
    _db: Database
    dialect: str

    # ------------------------------------------------------------------ privacy

    def forget_user(self, user_id: str | int, dry_run: bool = False) -> dict[str, int]:
        """Delete everything of one user: their generations (and the votes on them), their votes,
        the stories they started; training runs they asked for lose their name. Returns the counts
        (with `dry_run`, what would be deleted, deleting nothing)."""
        uid = str(user_id)
        theirs = select(m.Generation.id).where(m.Generation.user_id == uid)
        votes = or_(m.Feedback.user_id == uid, m.Feedback.generation_id.in_(theirs))

        def count(s: Session, model: Any, *where: Any) -> int:
            return s.scalar(select(func.count()).select_from(model).where(*where)) or 0

        def tx(s: Session) -> dict[str, int]:
            counts = {
                "generations": count(s, m.Generation, m.Generation.user_id == uid),
                "feedback": count(s, m.Feedback, votes),
                "stories": count(s, m.Story, m.Story.created_by == uid),
                "training_runs": count(s, m.TrainingRun, m.TrainingRun.requested_by == uid),
            }
            if not dry_run:
                s.execute(delete(m.Feedback).where(votes))
                s.execute(delete(m.Generation).where(m.Generation.user_id == uid))
                s.execute(delete(m.Story).where(m.Story.created_by == uid))
                s.execute(
                    update(m.TrainingRun).where(m.TrainingRun.requested_by == uid).values(requested_by=None)
                )
                if self.dialect == "sqlite" and counts["generations"]:
                    # Merge the index so the deleted words leave it now, not at some later merge.
                    s.execute(text("INSERT INTO generations_fts(generations_fts) VALUES ('optimize')"))
            return counts

        counts = self._db.write(tx)
        if not dry_run and self.dialect == "sqlite":
            self._checkpoint()
        return counts

    def _checkpoint(self) -> None:
        """Copy the write-ahead log into the database file and empty it (best effort)."""
        try:
            with self._db.engine.connect() as conn:
                raw_execute(conn, "PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception:  # noqa: BLE001 - a busy checkpoint is retried by SQLite later anyway
            pass

    # ------------------------------------------------------------------ health

    def integrity_check(self) -> list[str]:
        """Problems SQLite finds in the file and the search index; [] when all is well (and on
        other databases, which check themselves)."""
        if self.dialect != "sqlite":
            return []

        def tx(s: Session) -> list[str]:
            problems = [r[0] for r in s.execute(text("PRAGMA integrity_check")) if r[0] != "ok"]
            try:
                s.execute(text(
                    "INSERT INTO generations_fts(generations_fts, rank) VALUES ('integrity-check', 1)"
                ))  # fmt: skip
            except Exception as e:  # noqa: BLE001
                problems.append(f"search index: {e}")
            return problems

        return self._db.write(tx)

    def check_writable(self) -> None:
        """Raise `StoreError` unless a row could be written now: one row is changed to its own value
        and the change rolled back (an empty transaction succeeds even on a read-only SQLite file)."""

        def tx(s: Session) -> None:
            s.execute(text("UPDATE alembic_version SET version_num = version_num"))
            raise _Probe

        try:
            self._db.write(tx)
        except _Probe:
            pass
