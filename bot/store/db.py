"""Connecting to the database: URL, engine, SQLite settings, migrations, retries and clear errors.

- URL: the argument, else `GHOSTWRITE_DATABASE_URL`, else `sqlite:///<data dir>/ghostwrite.db`.
- SQLite: WAL, foreign keys on, a busy timeout, `synchronous=NORMAL`. SQLAlchemy emits BEGIN itself
  (the pysqlite driver's own transaction handling is switched off): `BEGIN IMMEDIATE` for write
  transactions, so two processes writing one file queue for the lock instead of failing halfway
  through a transaction, and a plain deferred `BEGIN` for reads (WAL readers never block writers).
- Migrations (Alembic, `migrations/`) run at start, inside one write transaction, only when the
  database is behind; a database at the newest revision is opened without writing to it.
- Every database problem reaches the caller as a `StoreError`, one line that says what is wrong.
  Transactions that fail because the database is busy are retried a few times with backoff first.
  A row refused for what it holds (out of range, too long, a constraint) is an `InvalidRecord`:
  retrying will not store it, unlike a database that is down, locked or read-only.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, exc, make_url
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from generator import paths
from generator.errors import GhostwriteError

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ENV_VAR = "GHOSTWRITE_DATABASE_URL"
DEFAULT_BUSY_TIMEOUT = 10.0  # seconds SQLite waits for a lock before reporting "database is locked"
RETRIES = 5  # further attempts for a transaction that failed because the database was busy
PG_MIGRATION_LOCK = 0x67687374  # pg_advisory_xact_lock key: one migrating process at a time


class StoreError(GhostwriteError):
    """The database could not do what was asked: locked, read-only, corrupt, unreachable, ..."""


class InvalidRecord(StoreError):
    """The row itself is wrong (an unknown source, no model, a number too big for its column, ...):
    asking again will not store it."""


class MissingParent(InvalidRecord):
    """The generation's parent is not in the database (deleted since): it can be stored without one."""


def database_url(url: str | URL | None = None) -> URL:
    """The URL to use: the argument, else the environment, else the SQLite file in the data dir."""
    raw = url if url is not None else os.environ.get(ENV_VAR) or None
    if raw is None:
        return make_url(f"sqlite:///{paths.home() / 'ghostwrite.db'}")
    if isinstance(raw, URL):
        return raw
    text = str(raw).strip()
    for prefix in ("postgres://", "postgresql://"):  # the psycopg 3 driver is the one installed
        if text.startswith(prefix):
            text = "postgresql+psycopg://" + text[len(prefix):]
    try:
        return make_url(text)
    except exc.ArgumentError:
        raise StoreError(f"not a database URL: {text!r} (e.g. sqlite:///path/ghostwrite.db)") from None


def describe(url: URL) -> str:
    """How to name the database in a message: the file for SQLite, the URL sans password otherwise."""
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return url.render_as_string(hide_password=True)


def make_engine(url: URL, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Engine:
    backend = url.get_backend_name()
    try:
        if backend == "sqlite":
            return _sqlite_engine(url, busy_timeout)
        connect_args: dict[str, Any] = {}
        if backend == "postgresql" and "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = 10
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except (exc.NoSuchModuleError, ModuleNotFoundError) as e:
        raise StoreError(f"no database driver for {describe(url)}: {e}") from None
    except exc.ArgumentError as e:
        raise StoreError(f"bad database URL {describe(url)}: {e}") from None


def _sqlite_engine(url: URL, busy_timeout: float) -> Engine:
    memory = url.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if memory:  # one shared connection, or every thread would see its own empty database
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver emits no BEGIN/COMMIT of its own
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA secure_delete = ON")  # forgotten users' text is overwritten, not left
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("ghostwrite_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


# ---------------------------------------------------------------------------------------------
# Errors


def _message_of(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or e
    return " ".join(str(orig).split()) or type(orig).__name__


def is_busy(e: BaseException) -> bool:
    """A failure that a later attempt may not meet: a lock, a serialization failure, a deadlock."""
    if not isinstance(e, exc.DBAPIError):
        return False
    sqlstate = getattr(e.orig, "sqlstate", None)
    if sqlstate in ("40001", "40P01"):
        return True
    text = _message_of(e).lower()
    return "database is locked" in text or "database table is locked" in text or "is busy" in text


def is_refusal(e: BaseException) -> bool:
    """A failure caused by the values written, not by the database's state: the same row will fail
    again however often it is retried (a number out of range, a value too long, a constraint)."""
    if isinstance(e, (OverflowError, UnicodeError)):  # raised by the driver while binding a value
        return True
    return isinstance(e, (exc.DataError, exc.IntegrityError))


def translate(e: BaseException, url: URL, attempts: int = 1) -> StoreError:
    """One line for a database failure, naming the database and what to do."""
    where = describe(url)
    text = _message_of(e)
    low = text.lower()
    if is_busy(e):
        return StoreError(
            f"the database {where} is locked by another process (gave up after {attempts} "
            "attempt(s)); try again in a moment"
        )
    if is_refusal(e):
        return InvalidRecord(f"the database {where} refuses this row: {text}")
    if "readonly" in low or "read-only" in low:
        if url.get_backend_name() == "sqlite":
            return StoreError(f"the database {where} is read-only; check its file permissions ({text})")
        return StoreError(f"the database {where} is read-only ({text})")
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return StoreError(
            f"the database {where} is corrupt or not a SQLite database ({text}); "
            "move it aside or restore a backup"
        )
    if "unable to open database file" in low:
        return StoreError(f"cannot open the database {where}: its folder is missing or not writable")
    if "disk is full" in low or "disk full" in low:
        return StoreError(f"the database {where} cannot grow: the disk is full")
    if isinstance(e, exc.OperationalError) and url.get_backend_name() != "sqlite":
        return StoreError(f"cannot reach the database {where}: {text}")
    return StoreError(f"database error on {where}: {text}")


# ---------------------------------------------------------------------------------------------
# Transactions


class Database:
    """An engine plus short transactions: `read(fn)` and `write(fn)` call `fn(session)` inside one
    transaction, commit, and turn failures into `StoreError` (retrying busy ones)."""

    def __init__(self, url: str | URL | None = None, busy_timeout: float = DEFAULT_BUSY_TIMEOUT):
        self.url = database_url(url)
        self.busy_timeout = busy_timeout
        self.engine = make_engine(self.url, busy_timeout)
        self._write_engine = self.engine.execution_options(ghostwrite_write=True)
        # SQLite takes one writer at a time: threads of this process queue on a lock instead of on
        # SQLite's busy handler, whose sleeps grow to 100 ms (16 threads finishing at once waited up to
        # 230 ms each; with the lock a write takes ~1 ms). Other processes still meet the busy timeout.
        self._write_lock = threading.Lock() if self.url.get_backend_name() == "sqlite" else contextlib.nullcontext()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def read(self, fn: Callable[[Session], T]) -> T:
        return self._run(fn, self.engine)

    def write(self, fn: Callable[[Session], T]) -> T:
        with self._write_lock:
            return self._run(fn, self._write_engine)

    def _run(self, fn: Callable[[Session], T], engine: Engine) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                with Session(engine, expire_on_commit=False) as session, session.begin():
                    return fn(session)
            except (exc.SQLAlchemyError, OverflowError, UnicodeError) as e:
                if is_busy(e) and attempt <= RETRIES:
                    time.sleep(min(2.0, 0.05 * 2 ** (attempt - 1)) * (0.5 + random.random()))
                    continue
                raise translate(e, self.url, attempt) from None

    def dispose(self) -> None:
        self.engine.dispose()


def raw_execute(conn: Any, sql: str) -> None:
    """Run `sql` on the driver's own connection, outside any transaction (for SQLite pragmas that
    have no effect inside one)."""
    conn.connection.dbapi_connection.execute(sql)


# ---------------------------------------------------------------------------------------------
# Migrations


FTS_PREFIX = "generations_fts"  # SQLite FTS5 table and its shadow tables
PG_FTS_INDEX = "ix_generations_fts"  # PostgreSQL GIN expression index


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """For Alembic autogenerate: the full-text search objects are not in the models; leave them."""
    return not (name and (name.startswith(FTS_PREFIX) or name == PG_FTS_INDEX))


def alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()  # type: ignore[return-value]


def known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


_REVISION_LINE = re.compile(r"^(revision|down_revision)(?:\s*:[^=\n]*)?\s*=\s*(.+?)\s*$", re.M)


def _head_of_files() -> str | None:
    """The newest revision, read from the migration files' `revision = "…"` / `down_revision = "…"` lines
    without importing Alembic (~70-140 ms of every process that stores a row); None when they do not
    read as one plain chain (a merge, a branch, anything unusual: Alembic decides then)."""
    revisions, parents = set(), set()
    for f in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = dict(_REVISION_LINE.findall(f.read_text(encoding="utf-8")))
        values = [v.strip("\"'") for v in found.values()]
        if "revision" not in found or not all(re.fullmatch(r"\w+", v) for v in values):
            return None
        revisions.add(found["revision"].strip("\"'"))
        if found.get("down_revision", "None") != "None":
            parents.add(found["down_revision"].strip("\"'"))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def _stamped(engine: Engine) -> str | None:
    """The revision the database says it is at (one row of alembic_version), or None."""
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall()
    except exc.SQLAlchemyError:
        return None
    return rows[0][0] if len(rows) == 1 else None


def migrate(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` (default: the newest), in one transaction.

    SQLite: foreign keys are switched off for the duration (a batch migration copies tables, and
    dropping the old copy must not cascade), and checked before the commit."""
    def run() -> None:
        if revision == "head":
            head = _head_of_files()
            if head is not None and _stamped(db.engine) == head:
                return  # at the newest revision already: Alembic not even imported
        target = head_revision() if revision == "head" else revision
        current = current_revision(db.engine)
        if current == target:
            return
        if current is not None and not known_revision(current):
            raise StoreError(
                f"the database {describe(db.url)} has schema {current}, newer than this ghostwrite "
                f"knows ({head_revision()}); update ghostwrite or use another database"
            )
        with db._write_engine.connect() as conn:
            sqlite = db.dialect == "sqlite"
            if sqlite:
                raw_execute(conn, "PRAGMA foreign_keys = OFF")
            try:
                with conn.begin():
                    if db.dialect == "postgresql":
                        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
                    from alembic import command

                    command.upgrade(alembic_config(conn), revision)
                    if sqlite:
                        bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if bad:
                            raise StoreError(f"migration left broken foreign keys: {bad[:3]}")
            finally:
                if sqlite:
                    raw_execute(conn, "PRAGMA foreign_keys = ON")

    attempt = 0
    while True:
        attempt += 1
        try:
            return run()
        except exc.SQLAlchemyError as e:
            if is_busy(e) and attempt <= RETRIES:
                time.sleep(0.1 * attempt)
                continue
            raise translate(e, db.url, attempt) from None
