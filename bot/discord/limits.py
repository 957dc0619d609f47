"""Fair use: a per-user cooldown and a global cap on concurrent generations with a short queue.

Both are plain asyncio objects owned by one Cog (no globals), so a reload starts fresh and two bots in one
process do not share limits. Time comes from an injectable clock for tests.
"""

from __future__ import annotations

import asyncio
import math
import time
import typing


class Busy(Exception):
    """Refused: too many generations running and queued. `retry_after` is a rounded-up estimate in seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"busy, try again in {retry_after} s")
        self.retry_after = retry_after


class OnCooldown(Exception):
    def __init__(self, retry_after: float):
        super().__init__(f"cooldown: {retry_after:.1f} s")
        self.retry_after = retry_after


class UserCooldown:
    """At most `rate` generations per `per` seconds per user (a sliding window)."""

    def __init__(self, rate: int = 1, per: float = 5.0, clock: typing.Callable[[], float] = time.monotonic):
        self.rate = max(1, int(rate))
        self.per = float(per)
        self.clock = clock
        self._hits: dict[int, list[float]] = {}

    def hit(self, user_id: int) -> None:
        """Count one use by `user_id`, or raise `OnCooldown` without counting it."""
        if self.per <= 0:
            return
        now = self.clock()
        hits = [t for t in self._hits.get(user_id, ()) if now - t < self.per]
        if len(hits) >= self.rate:
            raise OnCooldown(self.per - (now - hits[0]))
        hits.append(now)
        self._hits[user_id] = hits
        if len(self._hits) > 10_000:  # forget idle users now and then
            self._hits = {u: h for u, h in self._hits.items() if h and now - h[-1] < self.per}

    def reset(self, user_id: int) -> None:
        self._hits.pop(user_id, None)


class GenerationGate:
    """At most `max_concurrent` generations at once and `max_queue` waiting; beyond that, `Busy`.

    ``admit()`` is synchronous and instant (so a slash command can be refused before it defers); the
    returned ticket is awaited for a slot and used as an async context manager::

        ticket = gate.admit()          # may raise Busy
        await interaction.response.defer(thinking=True)
        async with ticket:             # waits in the queue
            ...
    """

    def __init__(self, max_concurrent: int = 2, max_queue: int = 4, *, queue_timeout: float = 120.0,
                 initial_estimate: float = 10.0, clock: typing.Callable[[], float] = time.monotonic):
        self.max_concurrent = max(1, int(max_concurrent))
        self.max_queue = max(0, int(max_queue))
        self.queue_timeout = queue_timeout
        self.clock = clock
        self.running = 0
        self.waiting = 0
        self._avg = float(initial_estimate)  # moving average of a generation's duration
        self._cond = asyncio.Condition()

    def estimate_wait(self) -> int:
        """Seconds until a new request would likely start."""
        ahead = self.waiting + 1
        return max(1, math.ceil(self._avg * ahead / self.max_concurrent))

    def admit(self) -> "Ticket":
        if self.running + self.waiting >= self.max_concurrent + self.max_queue:
            raise Busy(self.estimate_wait())
        self.waiting += 1
        return Ticket(self)

    def _record(self, seconds: float) -> None:
        self._avg = 0.7 * self._avg + 0.3 * max(0.05, seconds)

    async def _acquire(self) -> None:
        try:
            async with self._cond:
                await asyncio.wait_for(self._cond.wait_for(lambda: self.running < self.max_concurrent),
                                       self.queue_timeout)
                self.running += 1
        except asyncio.TimeoutError:
            raise Busy(self.estimate_wait()) from None
        finally:
            self.waiting -= 1

    async def _release(self) -> None:
        async with self._cond:
            self.running -= 1
            self._cond.notify(1)


class Ticket:
    def __init__(self, gate: GenerationGate):
        self.gate = gate
        self._entered = False
        self._started = 0.0
        self._used = False

    async def __aenter__(self) -> "Ticket":
        self._used = True
        await self.gate._acquire()
        self._entered = True
        self._started = self.gate.clock()
        return self

    async def __aexit__(self, *exc) -> None:
        if self._entered:
            self.gate._record(self.gate.clock() - self._started)
            self._entered = False
            await self.gate._release()

    def cancel(self) -> None:
        """Give the place back without running (e.g. the request failed before it was queued)."""
        if not self._used:
            self._used = True
            self.gate.waiting -= 1

