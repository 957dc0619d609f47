"""The samplers that act on the raw logits before the temperature, kept as tensors so that the compiled
loop (fastloop.py) and the one-step path (sampling.py) run the same arithmetic on them:

- **logit bias** (`bias TEXT=NUMBER`): a text that is one token adds NUMBER to that token's logit here;
  a longer text is steered token by token in Python (request.py: `BiasStrings`);
- **DRY** ("don't repeat yourself"): a penalty on the tokens that would extend a passage already in the
  context, growing with the repeat's length (fastloop._dry_penalty). A repeat never runs across a
  *breaker* (newline and sentence ends by default); for a character model a token is a character, so
  lengths are in characters;
- **UTF-8**: a SentencePiece model spells rare characters in byte pieces; sampled freely they can form
  invalid UTF-8 (shown as U+FFFD). The mask lets a byte piece follow only where it continues a valid
  sequence, and nothing but a continuation byte follow a lead byte that expects one.

`RowExtras` is one request's state; `stack` puts many side by side for a batch and `split` hands the
state back after the compiled loop stepped past its tokens.
"""

from __future__ import annotations

import math

import torch

from .fastloop import _track
from .settings import SamplingSettings, parse_bias

MAX_EXPONENT = 40.0  # base^(length − allowed) stays finite in float32 however long the repeat
_NO_MASK, _NO_NEXT = torch.zeros(2, 1), torch.zeros(4, 1, dtype=torch.long)  # (no byte pieces: unused)
DRY_WINDOW = 256  # tokens of context DRY looks back over (the prompt's tail included); empty slots hold V


def byte_kinds(tokenizer) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The UTF-8 automaton over the tokens, or None when the tokenizer has no byte pieces: (mask (2, V):
    0 or -inf for each token outside a sequence (row 0: no lone continuation byte, no byte that never
    occurs in UTF-8) and inside one (row 1: only a continuation byte); next (4, V): the continuation bytes
    still expected after each token, when 0..3 were)."""
    cached = getattr(tokenizer, "_gw_byte_kinds", False)
    if cached is not False:
        return cached
    values = tokenizer.byte_values() if hasattr(tokenizer, "byte_values") else None
    out = None
    if values is not None and any(v is not None for v in values):
        # per token: 0 not a byte piece or an ASCII byte, -1 a continuation byte, 2/3/4 a lead byte of a
        # sequence of that many bytes, 9 a byte that never occurs in UTF-8
        kinds = [0 if b is None or b < 0x80 else -1 if b < 0xC0 else 9 if b < 0xC2 else 2 if b < 0xE0
                 else 3 if b < 0xF0 else 4 if b < 0xF5 else 9 for b in values]
        inf = float("-inf")
        mask = torch.tensor([[inf if k in (-1, 9) else 0.0 for k in kinds], [0.0 if k == -1 else inf for k in kinds]])
        nxt = torch.tensor([[max(n - 1, 0) if k == -1 else (k - 1 if k in (2, 3, 4) else 0) for k in kinds]
                            for n in range(4)], dtype=torch.long)
        out = (mask, nxt)
    tokenizer._gw_byte_kinds = out
    return out


def _pieces(tokenizer) -> list[str]:
    cached = getattr(tokenizer, "_gw_pieces", None)
    if cached is None:
        cached = [tokenizer.decode([i]) for i in range(tokenizer.vocab_size)]
        tokenizer._gw_pieces = cached
    return cached


def stored_as(tokenizer, breakers: str) -> torch.Tensor:
    """(1, V): what DRY's history keeps for each token: itself, or V for a token whose text holds a
    breaker character (V never equals a token, so no repeat runs across it)."""
    cache = getattr(tokenizer, "_gw_breakers", None)
    if cache is None:
        cache = tokenizer._gw_breakers = {}
    if breakers not in cache:
        chars = set(breakers)
        pieces = _pieces(tokenizer)
        cache[breakers] = torch.tensor([len(pieces) if chars.intersection(p) else i
                                        for i, p in enumerate(pieces)]).view(1, -1)
    return cache[breakers]


def penalty_table(settings: SamplingSettings) -> torch.Tensor:
    """(1, DRY_WINDOW + 1): DRY's penalty for a repeat of each length (0 below the allowed length)."""
    lens = torch.arange(DRY_WINDOW + 1, dtype=torch.float32)
    allowed = float(settings.dry_allowed_length)
    pen = settings.dry_multiplier * torch.pow(torch.tensor(settings.dry_base, dtype=torch.float32),
                                              (lens - allowed).clamp(max=MAX_EXPONENT))
    return torch.where(lens >= allowed, pen, torch.zeros_like(pen)).view(1, -1)


def token_bias(tokenizer, items: list[str]) -> tuple[torch.Tensor | None, list[tuple[list[int], float]]]:
    """The `bias` items split: those whose text is one token, as a (1, V) vector of additions; the longer
    ones as (token ids, value) for `BiasStrings`."""
    vec = None
    longer = []
    for item in items:
        text, value = parse_bias(item)
        ids = [i for i in tokenizer.encode(text) if i != tokenizer.unk_id]
        if len(ids) == 1:
            if vec is None:
                vec = torch.zeros(1, tokenizer.vocab_size)
            vec[0, ids[0]] += value
        elif ids:
            longer.append((ids, value))
    return vec, longer


class RowExtras:
    """One request's bias vector, DRY state and UTF-8 state (see the module's docstring)."""

    def __init__(self, settings: SamplingSettings, tokenizer, vocab_size: int):
        V = vocab_size
        self.V = V
        self.bias: torch.Tensor | None = None
        self.dry_on = settings.dry_multiplier > 0
        self.hist = torch.full((1, DRY_WINDOW), V, dtype=torch.long)
        self.match = torch.zeros(1, DRY_WINDOW, dtype=torch.long)
        self.table = penalty_table(settings) if self.dry_on else torch.zeros(1, DRY_WINDOW + 1)
        self.kinds = byte_kinds(tokenizer) if tokenizer is not None else None
        self.need = torch.zeros(1, dtype=torch.long)
        if tokenizer is not None and self.dry_on:
            self.store = stored_as(tokenizer, settings.dry_breakers)
        else:  # no breakers (hand-made logits without a tokenizer)
            self.store = torch.arange(V).view(1, -1)
        self.minlog = torch.tensor([[math.log(settings.min_p) if settings.min_p > 0 else float("-inf")]])
        self.min_on = settings.min_p > 0
        self.ahead = 0  # tokens the compiled loop already tracked (observe skips them)

    @property
    def active(self) -> bool:
        return self.bias is not None or self.dry_on or self.kinds is not None or self.min_on

    def parts(self) -> tuple[list[torch.Tensor], list[bool]]:
        """This row's tensors in the order fastloop expects, and which samplers are on."""
        bias = self.bias if self.bias is not None else torch.zeros(1, self.V)
        mask, nxt = self.kinds if self.kinds is not None else (_NO_MASK, _NO_NEXT)
        return ([bias, self.hist, self.match, self.table, self.store, self.need, mask, self.minlog, nxt],
                [self.bias is not None, self.dry_on, self.kinds is not None, self.min_on])

    def prime(self, ids: list[int]) -> None:
        """The prompt's tail becomes DRY's history (its repeats found as if it had been written)."""
        if self.dry_on:
            for t in ids[-DRY_WINDOW:]:
                self.track(t)

    def track(self, token: int) -> None:
        if self.ahead:
            self.ahead -= 1
            return
        if not (self.dry_on or self.kinds is not None):
            return
        ex, on = self.parts()
        _track(torch.tensor([token]), ex, [False, self.dry_on, self.kinds is not None, False])
        self.hist, self.match = ex[1], ex[2]

    def snapshot(self) -> tuple:
        return self.hist.clone(), self.match.clone(), self.need.clone()

    def restore(self, snap: tuple) -> None:
        self.hist.copy_(snap[0])
        self.match.copy_(snap[1])
        self.need.copy_(snap[2])


def stack(rows: list[RowExtras]) -> tuple[list[torch.Tensor], list[bool]]:
    """Many rows' tensors side by side (one row: its own tensors, updated in place)."""
    parts = [r.parts() for r in rows]
    on = [any(p[1][i] for p in parts) for i in range(4)]
    if len(rows) == 1:
        return parts[0][0], on
    # (the UTF-8 tables, 6 and 8, are the model's: one for every row)
    ex = [parts[0][0][i] if i in (6, 8) else torch.cat([p[0][i] for p in parts]) for i in range(9)]
    return ex, on


def split(rows: list[RowExtras], ex: list[torch.Tensor], steps: int) -> None:
    """After the compiled loop: each row's DRY and UTF-8 state back from the batch's, and `steps`
    tokens marked as tracked already."""
    for i, r in enumerate(rows):
        if len(rows) > 1:
            r.hist.copy_(ex[1][i : i + 1])
            r.match.copy_(ex[2][i : i + 1])
            r.need.copy_(ex[5][i : i + 1])
        r.ahead = steps
