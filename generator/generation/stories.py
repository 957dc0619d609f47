"""A story's state carried over from turn to turn: an LSTM's whole past is its (h, c).

A request with a story key (`LoadedModel.serve(..., story=KEY)`) primes the story's whole text. Instead of
running all of it through the network every turn, `StoryStates.prime` starts from the newest state kept
for that story whose tokens are a prefix of this turn's (checked by a hash of the token ids, so an edited
story — /undo, /retry, a changed message — never reuses a state it does not match) and feeds only the
rest; then it keeps the state after this turn's text for the next one. Priming from a kept state gives
the same logits and state as priming everything, bit for bit (the products are row by row; the first
layer is a table), so a story's continuation is the one a full re-prime gives for the same seed.

States live in memory with the loaded model (a new version starts empty): KEEP per story (the newest
turns, so /retry and one /undo find theirs), STORIES stories, the least recently used dropped first.
"""

from __future__ import annotations

import hashlib
import threading
from array import array
from collections import OrderedDict

import torch

from .fastlstm import FastLSTM, StepState

KEEP = 3  # states kept per story: this turn's and the ones before (a retry or an undo reuses them)
STORIES = 256  # stories kept (per loaded model); h and c of a 1x384 model are 3 KB


def _digest(ids: list[int], n: int) -> bytes:
    return hashlib.blake2b(array("q", ids[:n]).tobytes(), digest_size=16).digest()


class _Kept:
    __slots__ = ("n", "digest", "h", "c", "logits")

    def __init__(self, ids: list[int], logits: torch.Tensor, state: StepState):
        self.n, self.digest = len(ids), _digest(ids, len(ids))
        self.h = torch.stack([h.clone() for h in state.h])  # (layers, 1, hidden): the engine steps `state` in place
        self.c = torch.stack([c.clone() for c in state.c])
        self.logits = logits.clone()

    def state(self) -> StepState:
        return StepState(list(self.h), list(self.c))


class StoryStates:
    """The kept states of a loaded model's stories. `prime` is called from any reader thread."""

    def __init__(self, keep: int = KEEP, stories: int = STORIES):
        self.keep, self.max_stories = keep, stories
        self._lock = threading.Lock()
        self._stories: OrderedDict[str, list[_Kept]] = OrderedDict()
        self.hits = self.misses = 0  # (for benchmarks and tests)

    def prime(self, runner: FastLSTM, story: str, ids: list[int]) -> tuple[torch.Tensor, StepState, int]:
        """(logits after `ids`, their state, how many tokens were fed): from the longest kept state of
        `story` whose tokens begin `ids`, else from nothing."""
        with self._lock:
            kept = list(self._stories.get(story, ()))
            if story in self._stories:
                self._stories.move_to_end(story)
        base = None
        for k in sorted(kept, key=lambda k: -k.n):
            if k.n <= len(ids) and _digest(ids, k.n) == k.digest:
                base = k
                break
        if base is not None and base.n == len(ids):  # nothing new (a retry): the kept state as it was
            logits, state, fed = base.logits.clone(), base.state(), 0
        elif base is not None:
            logits, state = runner.prime(ids[base.n:], (base.h, base.c))
            fed = len(ids) - base.n
        else:
            logits, state = runner.prime(ids)
            fed = len(ids)
        new = _Kept(ids, logits, state)
        with self._lock:
            self.hits, self.misses = self.hits + (base is not None), self.misses + (base is None)
            turns = [k for k in self._stories.get(story, []) if k.n != new.n or k.digest != new.digest]
            self._stories[story] = (turns + [new])[-self.keep:]
            self._stories.move_to_end(story)
            while len(self._stories) > self.max_stories:
                self._stories.popitem(last=False)
        return logits, state, fed

    def forget(self, story: str) -> None:
        with self._lock:
            self._stories.pop(story, None)
