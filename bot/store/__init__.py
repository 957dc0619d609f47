"""The store: every continuation, vote, training run, Discord setting and channel story.

`Store` is the one API the service and the frontends use. Each method is one short transaction of
its own (nothing is held open between calls, least of all while a model generates) and returns
plain dataclasses (`records.py`) or dicts, never live ORM objects. Database failures arrive as
`StoreError` (a `GhostwriteError`: one line, exit code 2).

    store = Store()                     # GHOSTWRITE_DATABASE_URL, else <data dir>/ghostwrite.db
    gid = store.start_generation(model="shakespeare", model_version=2, prompt="To be", source="repl")
    store.finish_generation(gid, output=" or not", status="complete", tokens_out=3, latency_ms=41)
    store.search("not")                 # -> [Generation, ...]
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from bot.store import models as m
from bot.store import queries
from bot.store.batch import StoreBatch
from bot.store.db import DEFAULT_BUSY_TIMEOUT, Database, InvalidRecord, MissingParent, StoreError, migrate
from bot.store.extras import StoreExtras
from bot.store.members import StoreMembers
from bot.store.records import Feedback, Generation, Story, TrainingRun
from bot.store.upkeep import StoreUpkeep

__all__ = ["Store", "StoreError", "InvalidRecord", "MissingParent", "Generation", "Feedback", "TrainingRun", "Story"]

_FINAL = ("complete", "interrupted", "error")
_EXPORT_PAGE = 500


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _check_finish_reason(reason: Any) -> None:
    if reason is not None and reason not in m.FINISH_REASONS:
        raise InvalidRecord(f"unknown finish reason {reason!r}; use one of {', '.join(m.FINISH_REASONS)}")


def _generation_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise the columns of a new generation."""
    if not fields.get("model"):
        raise InvalidRecord("a generation needs a model name")
    if fields.get("prompt") is None:
        raise InvalidRecord("a generation needs a prompt")
    source = fields.get("source") or "cli"
    if source not in m.SOURCES:
        raise InvalidRecord(f"unknown source {source!r}; use one of {', '.join(m.SOURCES)}")
    status = fields.get("status") or "running"
    if status not in m.GENERATION_STATUSES:
        raise InvalidRecord(f"unknown status {status!r}; use one of {', '.join(m.GENERATION_STATUSES)}")
    _check_finish_reason(fields.get("finish_reason"))
    out = dict(fields, source=source, status=status)
    for key in ("user_id", "guild_id", "channel_id", "message_id"):
        out[key] = _opt_str(out.get(key))
    out["model_version"] = queries.parse_version(out.get("model_version"))
    out["params"] = dict(out.get("params") or {})
    out["output"] = out.get("output") or ""
    if out.get("created_at") is None:
        out.pop("created_at", None)
    return out


class Store(StoreBatch, StoreExtras, StoreUpkeep, StoreMembers):
    """The ghostwrite database. Safe to share between threads; several processes may use one file."""

    _whole_fields = staticmethod(_generation_fields)  # (for StoreBatch.record_generations)

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        auto_migrate: bool = True,
    ):
        self._db = Database(url, busy_timeout=busy_timeout)
        try:
            if auto_migrate:
                migrate(self._db)
        except BaseException:
            self._db.dispose()
            raise

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._db.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self._db.dialect

    def close(self) -> None:
        self._db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ generations: writing

    def start_generation(
        self,
        *,
        model: str,
        prompt: str,
        source: str = "cli",
        model_version: int | str | None = None,
        params: dict[str, Any] | None = None,
        user_id: str | int | None = None,
        user_name: str | None = None,
        guild_id: str | int | None = None,
        channel_id: str | int | None = None,
        tokens_in: int | None = None,
        parent_id: int | None = None,
        message_id: str | int | None = None,
        created_at: datetime | None = None,
    ) -> int:
        """Record a request before generating; status `running`. Returns its id."""
        fields = dict(locals())
        del fields["self"]
        return self._insert_generation(_generation_fields(fields | {"status": "running"}))

    def record_generation(
        self,
        *,
        model: str,
        prompt: str,
        output: str = "",
        status: str = "complete",
        source: str = "cli",
        model_version: int | str | None = None,
        params: dict[str, Any] | None = None,
        user_id: str | int | None = None,
        user_name: str | None = None,
        guild_id: str | int | None = None,
        channel_id: str | int | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        latency_ms: int | None = None,
        error: str | None = None,
        parent_id: int | None = None,
        message_id: str | int | None = None,
        created_at: datetime | None = None,
        request_key: str | None = None,
        finish_reason: str | None = None,
    ) -> int:
        """Record a whole generation at once. Returns its id. A generation recorded again with the
        same `request_key` is stored once: the second call returns the first one's id."""
        fields = dict(locals())
        del fields["self"]
        return self._insert_generation(_generation_fields(fields))

    def _insert_generation(self, fields: dict[str, Any]) -> int:
        parent, key = fields.get("parent_id"), fields.get("request_key")

        t = m.Generation.__table__  # (SQL on the table, not the ORM entity: a fresh process, `ghostwrite generate`,
        # would otherwise configure every mapper first, ~0.1 s, to store one row)

        def tx(s: Session) -> int:
            if parent is not None and s.scalar(select(t.c.id).where(t.c.id == parent)) is None:
                raise MissingParent(f"no generation with id {parent} (the parent)")
            insert = self._dialect_insert()(t).values(**fields)
            gid = s.scalar(insert.on_conflict_do_nothing(index_elements=["request_key"]).returning(t.c.id))
            if gid is None:  # stored before under this key
                gid = s.scalar(select(t.c.id).where(t.c.request_key == key))
            return gid

        try:
            return self._db.write(tx)
        except InvalidRecord as e:  # on PostgreSQL the parent may go between the check and the insert
            if parent is not None and not isinstance(e, MissingParent) and "foreign key" in str(e).lower():
                raise MissingParent(f"no generation with id {parent} (the parent)") from None
            raise

    def finish_generation(
        self,
        gen_id: int,
        output: str,
        status: str = "complete",
        error: str | None = None,
        tokens_out: int | None = None,
        latency_ms: int | None = None,
        tokens_in: int | None = None,
        finish_reason: str | None = None,
    ) -> None:
        """Store the result of a started generation: complete, interrupted (with the partial
        output) or error, and why its text ended (`finish_reason`)."""
        if status not in _FINAL:
            raise StoreError(f"a finished generation's status is one of {', '.join(_FINAL)}, not {status!r}")
        _check_finish_reason(finish_reason)
        values: dict[str, Any] = {"output": output or "", "status": status, "error": error,
                                  "finish_reason": finish_reason}
        for key, value in (("tokens_out", tokens_out), ("latency_ms", latency_ms), ("tokens_in", tokens_in)):
            if value is not None:
                values[key] = value
        self._update_generation(gen_id, values)

    def set_message_id(self, gen_id: int, message_id: str | int | None) -> None:
        """Link a generation to the Discord message that carries it."""
        self._update_generation(gen_id, {"message_id": _opt_str(message_id)})

    def _update_generation(self, gen_id: int, values: dict[str, Any]) -> None:
        def tx(s: Session) -> None:
            result = s.execute(update(m.Generation).where(m.Generation.id == gen_id).values(**values))
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise StoreError(f"no generation with id {gen_id}")

        self._db.write(tx)

    # ------------------------------------------------------------------ generations: reading

    def get(self, gen_id: int) -> Generation | None:
        def tx(s: Session) -> Generation | None:
            row = s.get(m.Generation, gen_id)
            return Generation.from_row(row) if row else None

        return self._db.read(tx)

    def find_by_message(self, message_id: str | int) -> Generation | None:
        """The generation whose reply is the Discord message `message_id` (the newest if several)."""

        def tx(s: Session) -> Generation | None:
            stmt = (
                select(m.Generation)
                .where(m.Generation.message_id == str(message_id))
                .order_by(m.Generation.id.desc())
                .limit(1)
            )
            row = s.scalars(stmt).first()
            return Generation.from_row(row) if row else None

        return self._db.read(tx)

    def chain(self, gen_id: int) -> list[Generation]:
        """The generation and its ancestors (continue/retry parents), oldest first."""

        def tx(s: Session) -> list[Generation]:
            out: list[Generation] = []
            seen: set[int] = set()
            current: int | None = gen_id
            while current is not None and current not in seen:
                seen.add(current)
                row = s.get(m.Generation, current)
                if row is None:
                    break
                out.append(Generation.from_row(row))
                current = row.parent_id
            if not out:
                raise StoreError(f"no generation with id {gen_id}")
            return out[::-1]

        return self._db.read(tx)

    def list_generations(
        self,
        model: str | None = None,
        source: str | None = None,
        user_id: str | int | None = None,
        since: datetime | None = None,
        limit: int | None = 50,
        status: str | None = None,
    ) -> list[Generation]:
        """Newest first. `model` may be `name` or `name@vN`; `since` is a datetime (naive = UTC)."""
        stmt = queries.filtered(select(m.Generation), model, source, user_id, since, status)
        stmt = stmt.order_by(m.Generation.created_at.desc(), m.Generation.id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        return self._db.read(lambda s: [Generation.from_row(r) for r in s.scalars(stmt)])

    def search(self, query: str, limit: int = 50) -> list[Generation]:
        """Generations whose prompt or output contain every word of `query`, best match first
        (a match in the prompt counts more). Whole words, case-insensitive."""
        terms = queries.search_terms(query)
        if not terms:
            raise StoreError("nothing to search for: give at least one word")

        def tx(s: Session) -> list[Generation]:
            ids = queries.search_ids(s, self.dialect, terms, limit)
            rows = {r.id: r for r in s.scalars(select(m.Generation).where(m.Generation.id.in_(ids)))}
            return [Generation.from_row(rows[i]) for i in ids if i in rows]

        return self._db.read(tx)

    # ------------------------------------------------------------------ feedback

    def add_feedback(
        self, generation_id: int, user_id: str | int, value: int, emoji: str | None = None
    ) -> None:
        """A +1/-1 vote. One vote per user, generation and emoji: voting again replaces it."""
        if value not in (1, -1):
            raise StoreError(f"a vote is +1 or -1, not {value!r}")

        def tx(s: Session) -> None:
            if s.get(m.Generation, generation_id) is None:
                raise StoreError(f"no generation with id {generation_id}")
            insert = self._dialect_insert()
            stmt = insert(m.Feedback).values(
                generation_id=generation_id,
                user_id=str(user_id),
                value=value,
                emoji=emoji or "",
                created_at=m.utcnow(),
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["generation_id", "user_id", "emoji"],
                set_={"value": stmt.excluded.value, "created_at": stmt.excluded.created_at},
            )
            s.execute(stmt)

        self._db.write(tx)

    def remove_feedback(
        self, generation_id: int, user_id: str | int, emoji: str | None = None
    ) -> int:
        """Withdraw a user's vote with `emoji` (all their votes on it when `emoji` is None).
        Returns how many were removed."""

        def tx(s: Session) -> int:
            stmt = delete(m.Feedback).where(
                m.Feedback.generation_id == generation_id, m.Feedback.user_id == str(user_id)
            )
            if emoji is not None:
                stmt = stmt.where(m.Feedback.emoji == emoji)
            return s.execute(stmt).rowcount  # type: ignore[attr-defined]

        return self._db.write(tx)

    def get_feedback(self, generation_id: int) -> list[Feedback]:
        stmt = select(m.Feedback).where(m.Feedback.generation_id == generation_id).order_by(m.Feedback.id)
        return self._db.read(lambda s: [Feedback.from_row(r) for r in s.scalars(stmt)])

    def _dialect_insert(self) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert

    # ------------------------------------------------------------------ export and stats

    def iter_generations(self, **filters: Any) -> Iterator[Generation]:
        """Every generation matching `filters` (as `list_generations`), oldest first, read in
        pages of short transactions."""
        last = 0
        while True:
            stmt = queries.filtered(select(m.Generation), **filters)
            stmt = stmt.where(m.Generation.id > last).order_by(m.Generation.id).limit(_EXPORT_PAGE)
            page = self._db.read(lambda s: [Generation.from_row(r) for r in s.scalars(stmt)])  # noqa: B023 (called here)
            yield from page
            if len(page) < _EXPORT_PAGE:
                return
            last = page[-1].id

    def export(self, fmt: str, file: IO[str], **filters: Any) -> int:
        """Write matching generations to the text file `file` as `jsonl` (one JSON object a line)
        or `csv` (a header row; `params` as JSON text). Returns how many were written."""
        if fmt not in ("jsonl", "csv"):
            raise StoreError(f"unknown export format {fmt!r}; use jsonl or csv")
        writer = None
        if fmt == "csv":
            writer = csv.DictWriter(file, fieldnames=queries.EXPORT_FIELDS)
            writer.writeheader()
        n = 0
        for gen in self.iter_generations(**filters):
            row = queries.export_row(gen.to_dict(), fmt)
            if writer is not None:
                writer.writerow(row)
            else:
                file.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
        return n

    def stats(self) -> dict[str, Any]:
        """`{"total": N, "models": {name: {"count", "by_status": {status: n}, "latency_ms":
        {"p50", "p90", "p99"}, "tokens_out", "feedback"}}}`."""
        return self._db.read(queries.stats)
