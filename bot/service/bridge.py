"""The one bridge from the thread that reads a generation to the consumer that shows it.

A generation is read on a worker thread (the model and the store block); its consumer is another thread
(the REPL's main thread, which must stay free for Ctrl+C: `Relay`) or an event loop (Discord:
`AsyncStream`). Both cross by `pump`, which joins pieces that arrive closer together than COALESCE_S
into one, so a consumer is woken at most every COALESCE_S per stream however fast the model writes;
this is the only coalescing interval on the way from the model to a frontend (the generator hands
out a plain iterator). Stopping the consumer (Ctrl+C, a cancelled task, `aclose()`) sets the cancel
event; the stream then ends at its next piece and is stored as interrupted.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor

from .api import Result, TextStream

COALESCE_S = 0.025  # pieces that arrive closer together than this cross to the consumer as one
_DONE = object()


def pump(open_stream: Callable[[], TextStream], send: Callable[[object], None],
         interval: float = COALESCE_S) -> Result | None:
    """On the worker thread: open the stream, read it to its end, `send` its pieces (joined so that at
    most one goes every `interval` seconds, the last one at the end), then `_DONE`. Returns the stream's
    result; what opening or reading raised is raised (after `_DONE` was sent)."""
    stream = open_stream()
    if hasattr(stream, "wake_interval"):  # the engine wakes this reader at most every `interval` itself: the
        stream.wake_interval = interval   # check below only stops a second send right after a wake (it was
        interval /= 2                     # 20 ms there and 25 ms here: a send every other wake, ~40 ms apart)
    buf: list[str] = []
    last = float("-inf")
    try:
        for piece in stream:
            buf.append(piece)
            now = time.monotonic()
            if now - last >= interval:
                send("".join(buf))
                buf.clear()
                last = now
    finally:
        if buf:
            send("".join(buf))
    return stream.result


class Relay:
    """A generation read on a thread of its own, for a consumer thread that must stay responsive (the
    REPL's main thread, where Ctrl+C lands): `get(timeout)` gives the next text or None; once `done`,
    `outcome()` gives the Result or raises what the stream raised (a GhostwriteError before any text:
    bad settings, an unknown model, nothing writable)."""

    def __init__(self, open_stream: Callable[[], TextStream], cancel: threading.Event,
                 interval: float = COALESCE_S):
        self.cancel = cancel
        self.done = False
        self._queue: queue.Queue = queue.Queue()
        self._outcome: tuple[str, object] | None = None
        self._thread = threading.Thread(target=self._work, args=(open_stream, interval), daemon=True,
                                        name="ghostwrite-relay")
        self._thread.start()

    def _work(self, open_stream, interval) -> None:
        try:
            self._outcome = ("result", pump(open_stream, self._queue.put, interval))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer by outcome()
            self._outcome = ("error", e)
        finally:
            self._queue.put(_DONE)

    def get(self, timeout: float) -> str | None:
        """The next text (joined pieces), or None when none came within `timeout` or the stream ended."""
        if self.done:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _DONE:
            self.done = True
            return None
        return item  # type: ignore[return-value]

    def outcome(self, timeout: float | None = 5.0) -> Result:
        self._thread.join(timeout)
        if self._outcome is None:
            raise RuntimeError("the generation thread ended without a result")
        kind, value = self._outcome
        if kind == "error":
            raise value  # type: ignore[misc]
        return value  # type: ignore[return-value]


class AsyncStream:
    """`async for piece in svc.astream(req)`: the model and the store run on the service's worker threads;
    pieces cross to the event loop with call_soon_threadsafe (by `pump`). Cancelling the consumer (or
    `aclose()`) stops the generation, which is then stored as interrupted."""

    def __init__(self, executor: Executor, open_stream: Callable[[threading.Event], TextStream]):
        self._executor, self._open = executor, open_stream
        self.cancel = threading.Event()
        self.result: Result | None = None
        self.source: TextStream | None = None  # the worker's stream, once open (its `logprobs`, for an API)
        self._future: asyncio.Future | None = None

    def __aiter__(self):
        return self._iterate()

    async def _iterate(self):
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()

        def send(item: object) -> None:
            loop.call_soon_threadsafe(q.put_nowait, item)

        def work() -> Result | None:
            try:
                return pump(self._opened, send)
            finally:
                send(_DONE)

        self._future = asyncio.wrap_future(self._executor.submit(work))
        try:
            while True:
                item = await q.get()
                if item is _DONE:
                    break
                yield item
        finally:
            self.cancel.set()
            self.result = await asyncio.shield(self._future) if not self._future.done() else self._future.result()

    def _opened(self) -> TextStream:
        self.source = self._open(self.cancel)
        return self.source

    async def aclose(self) -> None:
        self.cancel.set()
        if self._future is not None:
            self.result = await asyncio.shield(self._future)
