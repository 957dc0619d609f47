"""Group commit: the rows of requests that finish together go to the store in one transaction.

A request that finishes while another's rows are being written does not queue for its own transaction:
its row waits, and when the write in progress ends, one of the waiting requests writes every waiting
row at once (`Store.record_generations`: one multi-row INSERT). The writer first waits up to LINGER_S
for the rows of requests still generating (the service counts them: `begin`), so a lone request waits
for nothing and sixteen requests finishing together make one to three transactions instead of sixteen. Each caller still gets its own row's id (or why it was not
stored) before its result is made: nothing is acknowledged before it is committed or spooled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ghostwrite.service")
Outcome = tuple[Any, Any]  # (generation id or None, store error or None)
_ALONE = object()
# How long the writer of a transaction waits for the rows of requests still generating (a commit costs
# ~1.5 ms of CPU on SQLite: 16 requests finishing within a few ms of each other made ~6 of them). The
# text is out already; only the row's id comes later. A lone request (nothing else running) waits for nothing.
LINGER_S = 0.005


class GroupCommit:
    """`write(row)` → the outcome `write_many` gave that row; `write_many(rows)` is called by one thread
    at a time, with every row that waited meanwhile."""

    def __init__(self, write_many: Callable[[list[dict]], list[Outcome]]):
        self._write_many = write_many
        lock = threading.Lock()
        self._cv = threading.Condition(lock)  # rows written: the threads whose rows wait
        self._came = threading.Condition(lock)  # a row came: the writer that lingers
        self._waiting: list[list] = []  # [row, outcome or None, done]
        self._busy = False
        self._running = 0  # requests generating now, whose rows will come (begin() .. write())
        self.batches = 0  # transactions written (for benchmarks and tests)
        self.largest = 0

    def begin(self) -> None:
        """A request started generating: its row will come (a leader waits up to LINGER_S for it)."""
        with self._cv:
            self._running += 1

    def write(self, row: dict) -> Outcome:
        mine: list = [row, None, False]
        with self._cv:
            self._running = max(0, self._running - 1)
            self._waiting.append(mine)
            self._came.notify()  # (a lingering leader counts the rows that came)
            while self._busy and not mine[2]:
                self._cv.wait()
            if not mine[2]:
                self._busy = True  # this thread writes what waits, its own row included
                deadline = time.monotonic() + LINGER_S
                while self._running and (left := deadline - time.monotonic()) > 0:
                    self._came.wait(left)  # requests still generating: their rows join this transaction
                batch, self._waiting = self._waiting, []
        if not mine[2]:
            self._lead(batch)
        if mine[1] is _ALONE:  # the batch failed unexpectedly: each row tries again by itself
            return self._write_many([row])[0]
        return mine[1]

    def _lead(self, batch: list[list]) -> None:
        outcomes: list[Outcome] | None = None
        try:
            outcomes = self._write_many([item[0] for item in batch])
        except Exception:  # noqa: BLE001 - a bug: no row is lost for it, each is written alone (and raises there)
            log.exception("writing %d rows together failed; each is written alone", len(batch))
        finally:
            with self._cv:
                for i, item in enumerate(batch):
                    item[1] = outcomes[i] if outcomes is not None else _ALONE
                    item[2] = True
                self._busy = False
                self.batches += 1
                self.largest = max(self.largest, len(batch))
                self._cv.notify_all()
