"""The spool: generations the database could not take yet, kept on disk until it can.

Any number of processes (a bot, a REPL, CLI commands) may share one spool, spooling and flushing at
once; every row ends up in the database exactly once:

- one file per row, `<data dir>/unsaved-generations/<time>-<key>.json`, written whole (a temporary
  file, fsync, rename): a reader never sees half a row, and spooling never touches another row's file;
- one flusher at a time per spool (an exclusive `flock` on `.lock`, taken without waiting: a process
  that finds it taken leaves the flushing to its holder, which the kernel releases if it dies);
- every row carries its generation's `request_key` (unique in the database), so a row written again —
  the flusher died between the commit and removing its file — is stored once;
- a row the database refuses for what it holds (`InvalidRecord`: a number out of range, an unknown
  source, ...) goes to `rejected/` with the reason and never holds back the rows after it; a database
  that is down (any other `StoreError`) stops the flush and the rows wait for the next one.

A spool left by an older ghostwrite (`unsaved-generations.jsonl`, one row a line) is read once: its
rows become files of this spool (keys derived from the lines, so doing it twice changes nothing).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bot.store.db import InvalidRecord, MissingParent
from generator.paths import atomic_write_text

log = logging.getLogger("ghostwrite.spool")

FOLDER = "unsaved-generations"
LEGACY = "unsaved-generations.jsonl"  # the single-file spool of earlier versions
REJECTED = "rejected"
STALE_TMP_S = 3600  # a temporary file this old was left by a writer that died


def store_row(store: Any, fields: dict[str, Any]) -> int:
    """Record one generation; if its parent is gone (deleted since), record it without one."""
    try:
        return store.record_generation(**fields)
    except MissingParent:
        return store.record_generation(**{**fields, "parent_id": None})


def _encode(fields: dict[str, Any]) -> str:
    # ASCII JSON: lone surrogates and NUL survive the file unchanged (the store decides what to make of them)
    return json.dumps(fields, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


def _decode(text: str) -> dict[str, Any]:
    fields = json.loads(text)
    if not isinstance(fields, dict):
        raise ValueError("not a JSON object")
    if isinstance(fields.get("created_at"), str):
        fields["created_at"] = datetime.fromisoformat(fields["created_at"])
    return fields


def _file_name(fields: dict[str, Any]) -> str:
    key = re.sub(r"[^A-Za-z0-9_-]", "_", str(fields.get("request_key") or "row"))[:64]
    return f"{time.time_ns():020d}-{key}.json"  # names sort in the order the rows were kept


class Spool:
    """The spool of one data folder (`home`); cheap to make, holds nothing open."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self.folder = self.home / FOLDER

    # ---- writing ----------------------------------------------------------------------------------
    def put(self, fields: dict[str, Any]) -> Path:
        """Keep one row (with its `request_key`: stored twice, it is stored once). Raises OSError when the
        folder cannot be written."""
        fields = {"created_at": datetime.now(timezone.utc), **fields}
        path = self.folder / _file_name(fields)
        atomic_write_text(path, _encode(fields))
        return path

    def set_aside(self, fields: dict[str, Any], reason: str, name: str | None = None) -> Path:
        """Keep a row the database refuses in `rejected/`, with the reason (never retried)."""
        path = self.folder / REJECTED / (name or _file_name(fields))
        atomic_write_text(path, _encode({**fields, "refused_because": reason}))
        log.error("a generation cannot be stored (%s); set aside in %s", reason, path)
        return path

    def unwritable(self) -> str | None:
        """Why a row could not be kept here now, or None when it could (a file is made and removed)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".probe-", suffix=".tmp", dir=self.folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            return f"the spool folder {self.folder} cannot be written ({e.strerror or e})"
        return None

    # ---- reading ----------------------------------------------------------------------------------
    def pending(self) -> list[Path]:
        """The waiting rows, oldest first."""
        try:
            return sorted(p for p in self.folder.glob("*.json") if p.is_file())
        except OSError:
            return []

    def flush(self, store: Any) -> int:
        """Write the waiting rows to `store`; returns how many were stored. A database that fails for
        any reason but the row raises (a `GhostwriteError`), leaving the rest for later."""
        legacy = self.home / LEGACY
        if not legacy.exists() and not self.pending():
            return 0
        with self._flush_lock() as locked:
            if not locked:
                return 0  # another process or thread is flushing this spool now
            try:
                self._adopt(legacy)
                self._sweep()
            except OSError as e:
                log.warning("cannot read the old spool %s: %s", legacy, e.strerror or e)
            done = 0
            for path in self.pending():
                try:
                    fields = _decode(path.read_text(encoding="utf-8"))
                except FileNotFoundError:
                    continue
                except (OSError, ValueError) as e:
                    self._move_aside(path, f"unreadable: {e}")
                    continue
                try:
                    store_row(store, fields)
                    done += 1
                except InvalidRecord as e:  # this row will never be stored: keep it apart, go on
                    try:
                        self.set_aside(fields, str(e), path.name)
                    except OSError as oe:
                        log.error("cannot set aside %s (%s): %s", path.name, e, oe.strerror or oe)
                        continue
                try:
                    path.unlink(missing_ok=True)
                except OSError as e:  # stored, but its file stays (its key keeps it from being stored twice)
                    log.error("cannot remove the spooled %s: %s", path, e.strerror or e)
                    return done
            return done

    @contextlib.contextmanager
    def _flush_lock(self) -> Iterator[bool]:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            log.warning("cannot flush the spool %s: %s", self.folder, e.strerror or e)
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _adopt(self, legacy: Path) -> None:
        """Turn the old single-file spool into files of this one (under the flush lock)."""
        try:
            lines = legacy.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            key = "legacy-" + hashlib.sha256(f"{i}:{line}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
            name = f"{0:020d}-{i:06d}-{key}.json"  # before anything spooled since, in their order
            try:
                fields = {**_decode(line), "request_key": key}
            except ValueError as e:
                self.set_aside({"line": line}, f"unreadable: {e}", name)
                continue
            atomic_write_text(self.folder / name, _encode(fields))
        legacy.unlink()
        log.warning("moved %d spooled generation(s) from %s to %s", len(lines), legacy.name, self.folder)

    def _move_aside(self, path: Path, reason: str) -> None:
        try:
            (self.folder / REJECTED).mkdir(exist_ok=True)
            os.replace(path, self.folder / REJECTED / path.name)
        except OSError as e:
            log.error("cannot set aside %s: %s", path, e.strerror or e)
            return
        log.error("a spooled generation is %s; set aside in %s", reason, self.folder / REJECTED)

    def _sweep(self) -> None:
        """Remove temporary files left by writers that died mid-write."""
        cutoff = time.time() - STALE_TMP_S
        for tmp in self.folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
