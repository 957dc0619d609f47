"""Continuous batching: every request on a loaded model advances in one forward step per token.

`LoadedModel.serve(prompt, settings)` hands the request to the model's `BatchEngine`, whose one thread
keeps one `Batch` (batch.py) of all active requests and advances it: one table lookup, one int8 matrix
product per layer and one output layer for the whole batch, then one vectorised sampling pass (or CHUNK
of those in one compiled call). Requests join as they come (each prompt primed in one pass on the
requester's thread, so a long prompt never stalls the others) and leave as they finish or are closed;
each keeps its own prompt, settings, length and seed (its bookkeeping is request.py's).

A request's text does not depend on what else is in the batch: the int8 products sum integers row by
row, the cell and the sampling are computed row by row, and every request draws from its own
`torch.Generator`. The same request alone, batched, or through `LoadedModel.generate` gives the same text.

A `BatchedGeneration` has the interface of `single.Generation` (iterator of text pieces, `close()`,
`.text`, `.tokens_in`, `.tokens_out`, `.seed`). Pieces produced between two reads are joined into one, and
a waiting reader is woken at most every `flush_interval` seconds (besides its first piece and its end),
so sixteen readers do not fight the stepping thread for the interpreter on every token.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque

import torch

from .. import env
from .batch import Batch
from .fastlstm import StepState
from .request import GenerationRequest
from .settings import SamplingSettings

log = logging.getLogger("ghostwrite.generator")
IDLE_EXIT_S = 30.0  # the stepping thread ends after this long with nothing to do (restarts on demand)
CHUNK = 32  # tokens per compiled call for the whole batch; requests join and leave between calls


class BatchedGeneration(GenerationRequest):
    """One request in the engine, and its hand-off from the stepping thread to its reader: pieces wait in
    a list under a lock until the reader takes them (joined into one); the reader is woken for its first
    piece, its end, and otherwise at most every `flush_interval` seconds."""

    def __init__(self, engine: BatchEngine, prompt: str, settings: SamplingSettings | dict | None,
                 logprobs: int = 0, story: str | None = None):
        super().__init__(engine.lm.tokenizer, prompt, settings, logprobs, story)
        self.engine = engine
        self.fed: int | None = None  # tokens run through the network to prime (a story's: only what was new)
        self._cond = threading.Condition(threading.Lock())
        self._pieces: list[str] = []
        self._ended = False  # no more pieces will come (finished, closed or failed)
        self._closed = False
        self._error: BaseException | None = None
        self._joined = False
        self._waiting = False
        self._first = True
        self._last_wake = 0.0
        self.wake_interval = engine.flush_interval  # a reader that coalesces itself sets its own (bridge.py)
        self._delivered_chars = 0
        self._delivered_tokens = 0
        self._pending_tokens = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if not self._joined:
            self._joined = True
            self._join()
        with self._cond:
            while not self._pieces and not self._ended:
                self._waiting = True
                self._cond.wait()
                self._waiting = False
            if self._pieces:
                piece = "".join(self._pieces)
                self._pieces.clear()
                self._delivered_chars += len(piece)
                self._delivered_tokens = self._pending_tokens
                return piece
            if self._error is not None:
                err, self._error = self._error, None
                raise err
            raise StopIteration

    def _join(self) -> None:
        """Prime the prompt here, on the reader's thread, then hand the state to the stepping thread."""
        try:
            torch.set_num_threads(self.engine.threads)  # this (worker) thread's OpenMP team: see BatchEngine._loop
            with torch.inference_mode():
                if self.story is not None:  # from the story's kept state: only its new text (stories.py)
                    logits, state, self.fed = self.engine.lm.stories.prime(self.engine.runner, self.story, self.ids)
                else:
                    logits, state = self.engine.runner.prime(self.ids)
                    self.fed = len(self.ids)
        except BaseException as e:  # noqa: BLE001 - raised to the reader by __next__
            with self._cond:
                self._error, self._ended = e, True
            return
        self.engine._add(self, logits, state)

    def close(self) -> None:
        """Stop: the request leaves the batch at the next step; `.text` and `.tokens_out` keep only what
        was read."""
        with self._cond:
            if not self._closed:
                self._closed = True
                self._pieces.clear()
                self.text = self.text[: self._delivered_chars]
                self.tokens_out = self._delivered_tokens
                self._ended = True
                self._cond.notify_all()

    def take(self, tokens) -> bool:
        """On the stepping thread: record the tokens `Batch.choose` gave this request under one lock and
        wake the reader at most once; returns whether the request stays in the batch."""
        with self._cond:
            if self._closed:
                return False
            done = self.ended  # (a ban that left nothing to write ends it without a token)
            if done and (rest := self.tail()):
                self._pieces.append(rest)
            for token in tokens:  # those after the request's end are dropped
                piece, done = self.emit(token)
                if piece:
                    self._pieces.append(piece)
                if done:
                    break
            self._pending_tokens = self.tokens_out
            if done:
                self._ended = True
            if self._waiting and (self._pieces or done):
                now = time.monotonic()
                if done or self._first or now - self._last_wake >= self.wake_interval:
                    self._first = False
                    self._last_wake = now
                    self._cond.notify()
            return not done

    def _fail(self, e: BaseException) -> None:
        with self._cond:
            self._error, self._ended = e, True
            self._cond.notify_all()


_ENGINES: weakref.WeakSet[BatchEngine] = weakref.WeakSet()  # (a replaced model's engine may go)


@atexit.register
def _stop_engines() -> None:
    for engine in list(_ENGINES):
        engine._stop_at_exit()


class BatchEngine:
    """One stepping thread per loaded model. `submit()` returns a `BatchedGeneration`."""

    def __init__(self, lm, max_batch: int = 128, flush_interval: float = 0.02):
        self.lm = lm
        self.runner = lm.runner
        self.threads = env.engine_threads()
        self.max_batch = max_batch
        self.flush_interval = flush_interval
        self._cv = threading.Condition()
        self._joining: deque = deque()
        self._thread: threading.Thread | None = None
        self.steps = 0  # forward steps taken (for benchmarks and tests)
        self.max_rows_seen = 0
        self._closing = False
        _ENGINES.add(self)

    def _stop_at_exit(self) -> None:
        """At interpreter exit, let the stepping thread leave between two calls: a daemon thread killed
        inside a compiled call aborts the process ("terminate called without an active exception")."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(2.0)

    def submit(self, prompt: str, settings: SamplingSettings | dict | None, logprobs: int = 0,
               story: str | None = None) -> BatchedGeneration:
        return BatchedGeneration(self, prompt, settings, logprobs, story)

    def _add(self, gen: BatchedGeneration, logits: torch.Tensor, state: StepState) -> None:
        with self._cv:
            self._joining.append((gen, logits, state))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=f"ghostwrite-batch-{self.lm.spec}",
                                                daemon=True)
                self._thread.start()
            self._cv.notify()

    def _loop(self) -> None:
        # one intra-op thread: OpenMP teams led by a thread other than the main one measured 4-5x slower
        # per step with 2 threads than with 1 on 2 cores (bench/NOTES.md); a batch of rows is one product
        torch.set_num_threads(self.threads)
        batch = Batch(self.runner)
        try:
            with torch.inference_mode():
                self._serve(batch)
        except BaseException as e:  # a bug must not leave readers waiting forever
            log.exception("generation engine of %s failed", self.lm.spec)
            with self._cv:
                pending = [g for g, _, _ in self._joining]
                self._joining.clear()
                # under the lock: a request that joins from now on starts a new thread; one that joined
                # while this thread was still alive but already failing would otherwise wait forever
                if self._thread is threading.current_thread():
                    self._thread = None
            for g in pending + batch.rows:
                g._fail(e)

    def _serve(self, batch: Batch) -> None:
        while not self._closing:
            joiners: list[tuple[BatchedGeneration, torch.Tensor, StepState]] = []
            with self._cv:
                if not batch.rows and not self._joining:
                    self._cv.wait(IDLE_EXIT_S)
                    if not self._joining:
                        self._thread = None
                        return
                while self._joining and len(batch.rows) + len(joiners) < self.max_batch:
                    joiners.append(self._joining.popleft())
            if joiners:  # requests join at the end of the batch, between two calls
                batch.add(joiners)
                self.max_rows_seen = max(self.max_rows_seen, len(batch.rows))
            chosen = batch.choose(CHUNK)
            keep = [i for i, (g, tokens) in enumerate(zip(batch.rows, chosen)) if g.take(tokens)]
            self.steps += batch.advance(keep)
