"""What a request's own text decides, token by token: stop strings, banned strings (with backtracking)
and bias strings longer than one token. `Guard` belongs to one request (request.py) and works on the
decoded output:

- **stop strings**: the text ends right before the first one, wherever the tokens split it. Text that
  could still be the start of a stop string is held back from the reader until it is not;
- **banned strings**: text that could be the start of a banned string is held back the same way. When
  the output completes a banned string, the request rewinds to the token where that string began — its
  text, counters, decoder, sampler state, and the network's state and logits, from a small ring of
  snapshots taken before each choice (`remember`; an LSTM's whole state is one (h, c) per layer) —
  forbids that token at that position and chooses again. A position where every token is forbidden
  ends the text (finish reason `stop`, with a note), so a ban can never hang a request;
- **bias strings** (`bias "thee=+2"` where "thee" is several tokens): the next token of the string gets
  the bias whenever the output ends with the string's first tokens (the first token always does).

Rows with bans or bias strings are chosen one token at a time in Python (`LogitsProcessor.in_python`):
the batch (batch.py) asks `steer` for their logits and `remember` before each choice.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch

from ..errors import GhostwriteError


@dataclass
class Snapshot:
    """A request just before it chose the token at `position`: enough to go back there exactly."""

    position: int
    text_len: int
    books: tuple  # the request's own counters (request.py: _books)
    decoder: object
    proc: tuple  # the sampler's state (repetition window, DRY, UTF-8)
    logits: torch.Tensor  # the network's logits for this position (vocab,)
    z: torch.Tensor  # every layer's h (layers × hidden,)
    c: list[torch.Tensor]  # every layer's c


class Guard:
    """One request's stop strings, banned strings and bias strings (see the module's docstring)."""

    def __init__(self, tokenizer, stops: list[str], bans: list[str], bias_strings: list[tuple[list[int], float]]):
        self.stops = list(stops)
        self.bans = list(bans)
        self.bias_strings = bias_strings
        self.prefixes = {w[:i] for w in self.stops + self.bans for i in range(1, len(w))}
        self.longest = max((len(w) for w in self.stops + self.bans), default=0)
        self.steers = bool(self.bans or self.bias_strings)  # chosen in Python, one token at a time
        longest_ids = max((len(ids) for ids, _ in bias_strings), default=0)
        self.recent: deque[int] = deque(maxlen=max(longest_ids, 1))
        # enough snapshots to reach back over the longest ban (a character may take 4 byte pieces)
        self.ring: deque[Snapshot] = deque(maxlen=4 * max((len(w) for w in self.bans), default=0) + 8)
        self.forbidden: dict[int, set[int]] = {}
        self.rewind: Snapshot | None = None  # set by `check_bans`, applied by the batch
        if self.bans:
            _check_bans_leave_something(tokenizer, self.bans)

    # ---- text ---------------------------------------------------------------------------------------
    def held(self, text: str) -> int:
        """How many characters at the end of `text` could still begin a stop or banned string."""
        for n in range(min(len(text), self.longest - 1), 0, -1):
            if text[-n:] in self.prefixes:
                return n
        return 0

    def find_stop(self, text: str, start: int) -> int | None:
        """Where the first stop string begins, looking at what was not yet found stop-free."""
        hits = [i for w in self.stops if (i := text.find(w, max(0, start - len(w) + 1))) >= 0]
        return min(hits) if hits else None

    def find_ban(self, text: str, start: int) -> int | None:
        hits = [i for w in self.bans if (i := text.find(w, max(0, start - len(w) + 1))) >= 0]
        return min(hits) if hits else None

    # ---- the choice -----------------------------------------------------------------------------------
    def steer(self, row: torch.Tensor, position: int) -> torch.Tensor | None:
        """The logits for `position` with the forbidden tokens out and the bias strings' next tokens
        raised; None when nothing may be written there."""
        out = row
        forbidden = self.forbidden.get(position)
        if forbidden:
            out = out.clone()
            out[list(forbidden)] = float("-inf")
            if bool(torch.isneginf(out).all()):
                return None
        if self.bias_strings:
            out = out.clone() if out is row else out
            recent = list(self.recent)
            for ids, value in self.bias_strings:
                for k in range(min(len(ids) - 1, len(recent)), -1, -1):  # the longest prefix written
                    if k == 0 or recent[-k:] == ids[:k]:
                        out[ids[k]] += value
                        break
        return out

    def remember(self, snap: Snapshot) -> None:
        self.ring.append(snap)

    def rewind_to(self, char_index: int, token_at: dict[int, int]) -> Snapshot:
        """The snapshot of the token whose text holds `char_index` (the start of a banned string); that
        token is forbidden at its position from now on, and forbids past it are forgotten."""
        snap = next((s for s in reversed(self.ring) if s.text_len <= char_index), None)
        if snap is None:
            snap = self.ring[0]
        while self.ring and self.ring[-1].position > snap.position:
            self.ring.pop()
        self.ring.pop()  # it will be remembered again before the choice is made again
        for p in [p for p in self.forbidden if p > snap.position]:
            del self.forbidden[p]
        self.forbidden.setdefault(snap.position, set()).add(token_at[snap.position])
        self.rewind = snap
        return snap

    def state(self) -> tuple:
        return (tuple(self.recent),)

    def restore(self, state: tuple) -> None:
        self.recent.clear()
        self.recent.extend(state[0])


def _check_bans_leave_something(tokenizer, bans: list[str]) -> None:
    """A ban list whose single characters cover every character the model can write is refused."""
    singles = {w for w in bans if len(w) == 1}
    if not singles:
        return
    pieces = [tokenizer.decode([i]) for i in range(tokenizer.vocab_size) if i != tokenizer.unk_id]
    if all(not p or p[0] in singles for p in pieces if p):
        raise GhostwriteError("ban bans every character the model can write: nothing could be generated")
