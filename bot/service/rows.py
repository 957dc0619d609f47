"""Group commit: the rows of requests that finish together go to the store in one transaction.

A request that finishes while another's rows are being written does not queue for its own transaction:
its row waits, and when the write in progress ends, one of the waiting requests writes every waiting
row at once (`Store.record_generations`: one multi-row INSERT). The first row of a quiet moment is
written at once, alone, so a lone request waits for nothing; sixteen requests finishing together make
two or three transactions instead of sixteen. Each caller still gets its own row's id (or why it was not
stored) before its result is made: nothing is acknowledged before it is committed or spooled.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ghostwrite.service")
Outcome = tuple[Any, Any]  # (generation id or None, store error or None)
_ALONE = object()


class GroupCommit:
    """`write(row)` → the outcome `write_many` gave that row; `write_many(rows)` is called by one thread
    at a time, with every row that waited meanwhile."""

    def __init__(self, write_many: Callable[[list[dict]], list[Outcome]]):
        self._write_many = write_many
        self._cv = threading.Condition(threading.Lock())
        self._waiting: list[list] = []  # [row, outcome or None, done]
        self._busy = False
        self.batches = 0  # transactions written (for benchmarks and tests)
        self.largest = 0

    def write(self, row: dict) -> Outcome:
        mine: list = [row, None, False]
        with self._cv:
            self._waiting.append(mine)
            while self._busy and not mine[2]:
                self._cv.wait()
            if not mine[2]:
                self._busy = True  # this thread writes what waits, its own row included
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
