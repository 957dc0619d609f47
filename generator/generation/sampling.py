"""Choosing the next token: repetition penalty, temperature, top-k, top-p, min-p, one random stream per request.

Sampling draws one uniform number per token from the request's own `torch.Generator` and inverts the
cumulative distribution (no sort unless top-p asks for one), so a seed reproduces a text exactly, alone
or batched with other requests.

Whatever the settings (a temperature or penalty of 1e-300, a top-p that rounds to zero) and whatever the
logits (NaN, ±inf), the choice is a token of the vocabulary: divisors are kept at or above float32's
smallest normal number (below it they round to 0 and the arithmetic gives NaN), top-p always keeps the
most likely token, and a row whose distribution is not a number (an overflowed 1e-300 temperature: the
limit is greedy) takes its most likely token.
"""

from __future__ import annotations

import math

import torch

from .extras import RowExtras, stack
from .fastloop import _adjust, _choose
from .settings import SamplingSettings

# The smallest normal float32: a temperature or penalty below it would round to 0 (or a subnormal) in
# float32 and divide a logit into ±inf or NaN. Above it nothing changes.
TINY = float(torch.finfo(torch.float32).tiny)

class LogitsProcessor:
    """One request's token choice: repetition penalty, temperature, top-k, top-p, min-p, and its own random
    stream (`settings.seed`). `sample_rows` chooses for many requests at once; a row's choice depends
    only on its own logits and its own stream."""

    def __init__(self, settings: SamplingSettings, vocab_size: int, window: int = 64, banned: int | None = None,
                 logprobs: int = 0, tokenizer=None):
        self.s = settings
        self.banned = banned  # the unknown token: a placeholder for input, never something to write
        self.window = window
        self.vocab_size = vocab_size
        self.recent: list[int] = []
        self.counts = torch.zeros(vocab_size, dtype=torch.int32) if settings.repetition_penalty != 1.0 else None
        self.generator = torch.Generator().manual_seed(int(settings.seed or 0))
        self._u: list[float] = []
        self.greedy = settings.temperature == 0 and self.counts is None
        # plain: chosen by the compiled loop's arithmetic (temperature, min-p, logit bias, DRY, UTF-8);
        # top-k, top-p and the repetition penalty are chosen in Python (`choose`)
        self.plain = settings.temperature > 0 and self.counts is None and not (
            settings.top_k and settings.top_k < vocab_size) and settings.top_p >= 1.0
        self.extras = RowExtras(settings, tokenizer, vocab_size)
        self.temp = torch.tensor([[max(settings.temperature, TINY) if settings.temperature else 1.0]])
        self.penalty = max(settings.repetition_penalty, TINY)
        self.temp1 = self.temp.view(1)
        # logprobs > 0: note each chosen token's log-probability and the `logprobs` likeliest alternatives
        # (`noted`); such a row is chosen in Python (`pick`), so rows that do not ask keep the compiled loop
        self.logprobs = logprobs
        self.noted: tuple[float, list[tuple[int, float]]] | None = None
        if logprobs:
            self.plain = self.greedy = False

    def state(self) -> tuple:
        """What a rewind (a banned string) restores: the penalty's window, DRY's and UTF-8's state."""
        return list(self.recent), None if self.counts is None else self.counts.clone(), self.extras.snapshot()

    def restore(self, state: tuple) -> None:
        self.recent = list(state[0])
        if self.counts is not None:
            self.counts.copy_(state[1])
        self.extras.restore(state[2])

    def uniform(self) -> float:
        if not self._u:
            # float32 values (exact as Python floats), so every sampling path compares the same number
            self._u = torch.rand(256, dtype=torch.float32, generator=self.generator).tolist()[::-1]
        return self._u.pop()

    def uniforms(self, k: int) -> list[float]:
        """The next k numbers of `uniform()`, in order."""
        return [self.uniform() for _ in range(k)]

    def in_python(self) -> None:
        """This row is chosen in Python from now on (banned strings rewind it; a longer bias string
        changes its logits by what it wrote)."""
        self.plain = self.greedy = False

    def observe(self, token: int) -> None:
        self.extras.track(token)
        self.count(token)

    def count(self, token: int) -> None:
        """The repetition penalty's window (the prompt's tail primes it)."""
        if self.counts is None:
            return
        self.recent.append(token)
        self.counts[token] += 1
        if len(self.recent) > self.window:
            self.counts[self.recent.pop(0)] -= 1

    def __call__(self, logits: torch.Tensor) -> int:
        logits = logits.float().reshape(1, -1).clone()
        if self.banned is not None:
            logits[:, self.banned] = float("-inf")
        return sample_rows(logits, [self])[0]

    def pick(self, row: torch.Tensor) -> int:
        """`choose`, noting the log-probabilities when asked: the model's own distribution over the row
        (before the penalty, temperature and filters, as vLLM reports them)."""
        token = self.choose(row)
        if self.logprobs:
            lp = torch.log_softmax(row.float(), dim=-1)
            top = torch.topk(lp, min(self.logprobs, lp.numel()))
            self.noted = (float(lp[token]), list(zip(top.indices.tolist(), top.values.tolist())))
        return token

    def choose(self, row: torch.Tensor) -> int:
        """The general path for one row (already masked): penalty, temperature, top-k, top-p, min-p."""
        s = self.s
        if self.extras.active:
            ex, on = self.extras.parts()
            row = _adjust(row.view(1, -1), ex, on).view(-1)
        logits = row
        if self.counts is not None:
            seen = self.counts > 0
            pen = torch.where(logits > 0, logits / self.penalty, logits * self.penalty)
            logits = torch.where(seen, pen, logits)
        if s.temperature == 0:
            return int(torch.argmax(logits))
        # top-k and top-p rank the scores before the temperature divides them (the same order: T > 0), so
        # a row that overflows when divided by a tiny T still knows its most likely token (`_last_live`)
        scores, idx = logits, None
        if s.top_k and s.top_k < scores.numel():
            scores, idx = torch.topk(scores, s.top_k)  # sorted, largest first
        if s.top_p < 1.0 and idx is None:
            scores, idx = torch.sort(scores, descending=True)
        logits = scores / self.temp1
        if s.top_p < 1.0:
            probs = torch.softmax(logits, dim=-1)
            keep = torch.cumsum(probs, dim=-1) - probs < s.top_p
            keep[0] = True  # the most likely token, even where top_p rounds to 0 in float32 or probs are NaN
            logits = logits.masked_fill(~keep, float("-inf"))
        if s.min_p > 0:
            # min-p keeps the tokens at least min_p times as likely as the likeliest: p_i >= min_p * p_max, in
            # logits l_i >= l_max + ln(min_p) (the likeliest always stays). It filters the tempered
            # distribution, the one sampled from, like top-p here and min-p in Hugging Face transformers
            # and vLLM, so min_p means the same share of what is drawn at any temperature (llama.cpp's
            # default chain applies the temperature last instead, after min-p).
            logits = logits.masked_fill(logits < logits.max() + math.log(s.min_p), float("-inf"))
        cdf = torch.softmax(logits, dim=-1).cumsum_(-1)
        u = self.uniform()
        j = int(torch.searchsorted(cdf, u, right=True))
        if j >= cdf.numel():
            j = _last_live(cdf, u, scores)
        return int(idx[j]) if idx is not None else j


def sample_rows(logits: torch.Tensor, procs: list[LogitsProcessor]) -> list[int]:
    """Next token for each row of `logits` (rows, vocab), row i by `procs[i]`. The banned (unknown)
    token is expected at -inf already: the generation runner's output bias puts it there.

    Rows with plain settings (temperature only) share one softmax / cumsum / searchsorted; greedy rows
    one argmax; the others take `LogitsProcessor.choose`. Every one of these is computed row by row,
    so the result for a row is the same whatever the other rows are."""
    n = len(procs)
    if any(p.extras.active and (p.plain or p.greedy) for p in procs):
        return _with_extras(logits, procs)
    if n == 1:
        p = procs[0]
        if p.plain:  # the same arithmetic as _plain, on one row: six small ops
            V = logits.size(-1)
            cdf = torch.softmax(logits.view(V) / p.temp1, dim=-1).cumsum_(-1)
            u = p.uniform()
            j = int(torch.searchsorted(cdf, u, right=True))
            return [j if j < V else _last_live(cdf, u, logits.view(V))]
        if p.greedy:
            return [int(torch.argmax(logits[0]))]
        return [p.pick(logits[0])]
    out: list[int | None] = [None] * n
    plain = [i for i, p in enumerate(procs) if p.plain]
    if plain:
        rows = logits if len(plain) == n else logits.index_select(0, torch.tensor(plain))
        temps = torch.cat([procs[i].temp for i in plain])
        for i, t in zip(plain, _plain(rows, temps, [procs[i].uniform() for i in plain])):
            out[i] = t
    if len(plain) < n:
        greedy = [i for i, p in enumerate(procs) if p.greedy]
        if greedy:
            best = torch.argmax(logits.index_select(0, torch.tensor(greedy)), dim=1).tolist()
            for i, t in zip(greedy, best):
                out[i] = t
        for i, p in enumerate(procs):
            if out[i] is None:
                out[i] = p.pick(logits[i])
    return out  # type: ignore[return-value]


def _with_extras(logits: torch.Tensor, procs: list[LogitsProcessor]) -> list[int]:
    """`sample_rows` where a plain or greedy row uses min-p, a logit bias, DRY or the UTF-8 mask: those
    rows together through the compiled loop's own functions (fastloop._adjust, _choose), the others
    by `pick`."""
    n = len(procs)
    fast = [i for i, p in enumerate(procs) if p.plain or p.greedy]
    out: list[int | None] = [None] * n
    rows = logits if len(fast) == n else logits.index_select(0, torch.tensor(fast))
    ps = [procs[i] for i in fast]
    ex, on = stack([p.extras for p in ps])
    temps = torch.cat([p.temp for p in ps]) if len(ps) > 1 else ps[0].temp
    greedy = torch.tensor([p.greedy for p in ps])
    us = torch.tensor([p.uniform() if p.plain else 0.0 for p in ps], dtype=torch.float32)
    for i, t in zip(fast, _choose(_adjust(rows, ex, on), temps, greedy, us, ex[7], on[3]).tolist()):
        out[i] = t
    for i, p in enumerate(procs):
        if out[i] is None:
            out[i] = p.pick(logits[i])
    return out  # type: ignore[return-value]


def _plain(rows: torch.Tensor, temps: torch.Tensor, us: list[float]) -> list[int]:
    """Inverse-CDF sampling, row by row: the first token whose cumulative probability exceeds u."""
    cdf = torch.softmax(rows / temps, dim=-1).cumsum_(-1)
    picked = torch.searchsorted(cdf, torch.tensor(us, dtype=torch.float32).view(-1, 1), right=True).view(-1).tolist()
    V = rows.size(1)
    for r, j in enumerate(picked):  # cdf[j] > u >= cdf[j-1]: token j has probability > 0
        if j >= V:
            picked[r] = _last_live(cdf[r], us[r], rows[r])
    return picked


def _last_live(cdf: torch.Tensor, u: float, logits: torch.Tensor) -> int:
    """u at or above the (rounded) total: scale it to the total instead. A total that is not a number
    (NaN: the row overflowed, e.g. logits divided by a 1e-300 temperature, or the model wrote NaN)
    leaves every search past the end: the row's most likely token then (what a temperature → 0 means).
    `fastloop._choose` does the same, operation for operation."""
    V = cdf.numel()
    j = int(torch.searchsorted(cdf, cdf[-1:] * u, right=True))
    if j < V:
        return j
    j = int(torch.searchsorted(cdf, cdf[-1:], right=False))
    return j if j < V else int(torch.argmax(logits))
