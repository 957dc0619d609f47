"""One generation request's bookkeeping, the same whichever path steps it (`single.Generation` on the
caller's thread, `engine.BatchedGeneration` in the batching engine): the prompt and settings checked, the
seed drawn when none is given, the prompt's tail encoded and the repetition window primed with it, then
each sampled token decoded as it comes, counted, and the output cut at the exact stop (stopping.py), at a
stop string, or at the token cap; banned strings rewind it (guard.py). No torch calls here besides the
token choice's own state (sampling.py).
"""

from __future__ import annotations

import copy
import secrets

from .extras import token_bias
from .guard import Guard, Snapshot
from .sampling import LogitsProcessor
from .settings import CONTEXT_CHARS, SamplingSettings, check_prompt  # (how much of a prompt primes the state)
from .stopping import StopRule, token_cap


class GenerationRequest:
    """A prompt and its settings on a loaded model. `.ids` is what primes the network; `emit(token)`
    records each sampled token. After it ends: `.text`, `.tokens_in`, `.tokens_out`, `.seed`."""

    def __init__(self, tokenizer, prompt: str, settings: SamplingSettings | dict | None, logprobs: int = 0,
                 story: str | None = None):
        if not isinstance(settings, SamplingSettings):
            settings = SamplingSettings.from_dict(settings)
        prompt = check_prompt(prompt, story=story is not None)
        self.story = story  # a story's key: the prompt is its whole text, all of it primes (stories.py)
        settings.validate()
        if settings.seed is None:
            settings = SamplingSettings(**{**settings.to_dict(), "seed": secrets.randbits(31)})
        self.prompt, self.settings = prompt, settings
        self.seed = settings.seed
        self.text = ""
        self.tokens_out = 0
        # why the text ended, once it has: "length" (the requested length or the token cap) or "stop"
        # (a stop string); None while it runs (the service says "interrupted" or "error" for the others)
        self.finish_reason: str | None = None
        self.note: str | None = None  # a word for the reader about how it ended (e.g. a ban left nothing)
        ids = tokenizer.encode((prompt if story is not None else prompt[-CONTEXT_CHARS:]) or "\n") or [tokenizer.unk_id]
        self.ids = ids
        self.tokens_in = len(ids)
        self.proc = LogitsProcessor(settings, tokenizer.vocab_size, banned=tokenizer.unk_id, logprobs=logprobs,
                                    tokenizer=tokenizer)
        self.proc.extras.bias, bias_strings = token_bias(tokenizer, settings.bias)
        self.proc.extras.prime(ids)
        self.guard: Guard | None = None
        if settings.stop or settings.ban or bias_strings:
            self.guard = Guard(tokenizer, settings.stop, settings.ban, bias_strings)
            if self.guard.steers:
                self.proc.in_python()
        self.ended = False  # ended without a token to emit (a ban left nothing to write)
        self._sent = 0  # characters handed to the reader (the rest may still be a stop or banned string)
        self._scanned = 0  # characters searched for stop and banned strings
        self._token_at: dict[int, int] = {}  # position → token, for the rewind's forbid
        # logprobs > 0: one entry per token, (its text, its log-probability, [(alternative, log-prob)...])
        self.logprobs: list[tuple[str, float, list[tuple[str, float]]]] | None = [] if logprobs else None
        self._tokenizer = tokenizer
        for t in ids[-self.proc.window:]:
            self.proc.count(t)
        self._stop = StopRule(settings.unit, settings.length)
        self._decoder = tokenizer.stream_decoder()
        self._cap = token_cap(settings)
        self._by_tokens = settings.unit == "tokens"

    def tokens_left(self) -> int:
        """Tokens the cap still allows (at least 1)."""
        return max(1, self._cap - self.tokens_out)

    def emit(self, token: int) -> tuple[str, bool]:
        """Take one sampled token: (text that became printable, whether the output is complete)."""
        before, at = self.tokens_out, len(self.text)
        piece, done = self._emit(token)
        if self.logprobs is not None and self.proc.noted is not None:
            lp, top = self.proc.noted
            self.proc.noted = None
            if self.tokens_out <= before:  # a banned string rewound the request: its tokens' entries go too
                del self.logprobs[self.tokens_out:]
            elif not (done and at >= len(self.text)):  # (a token the end cut off entirely is not listed)
                # the token's own text (a stop string's cut may end the text inside it, or before it)
                decode = self._tokenizer.decode
                self.logprobs.append((self.text[at:], lp, [(decode([t]), v) for t, v in top]))
            if done and len(self.text) < at:  # the cut fell before this token (a paragraph's break, a stop
                self._drop_entries_past_the_end(self.logprobs)  # string begun earlier): so do their entries
        return piece, done

    def _drop_entries_past_the_end(self, entries: list) -> None:
        extra = sum(len(e[0]) for e in entries) - len(self.text)
        while extra > 0 and entries:
            text, lp, top = entries.pop()
            if len(text) > extra:  # a token the end falls inside keeps its part of the text
                entries.append((text[: len(text) - extra], lp, top))
            extra -= len(text)

    def _emit(self, token: int) -> tuple[str, bool]:
        if self.guard is not None:
            return self._guarded(token)
        self.proc.observe(token)
        self.tokens_out += 1
        n = self.tokens_out
        last = n >= self._cap or (self._by_tokens and n >= self.settings.length)
        piece = self._decoder.feed(token)
        if last:
            piece += self._decoder.flush()
        if piece:
            self.text += piece
            cut = self._stop.feed(self.text)
            if cut is not None:  # (a paragraph's cut falls before its last newline, which was held back)
                self.text = self.text[:cut]
                self.finish_reason = "length"
                return self._hand_over(len(self.text)), True
        if last:
            self.finish_reason = "length"
            return self._hand_over(len(self.text)), True
        return self._hand_over(len(self.text) - self._stop.held(self.text)), False

    def _hand_over(self, upto: int) -> str:
        """The text from what the reader has up to `upto` (what a later cut can no longer take back)."""
        out, self._sent = self.text[self._sent:upto], max(self._sent, upto)
        return out

    # ---- stop strings, banned strings, bias strings (guard.py) ------------------------------------------
    def _guarded(self, token: int) -> tuple[str, bool]:
        """`_emit` with a guard: the text ends before a stop string; a banned string rewinds the request
        (nothing is handed over then); text that may still begin either is held back."""
        g = self.guard
        assert g is not None
        if g.steers:
            self._token_at[self.tokens_out] = token
            g.recent.append(token)
        self.proc.observe(token)
        self.tokens_out += 1
        n = self.tokens_out
        last = n >= self._cap or (self._by_tokens and n >= self.settings.length)
        piece = self._decoder.feed(token) + (self._decoder.flush() if last else "")
        self.text += piece
        if g.bans and (at := g.find_ban(self.text, self._scanned)) is not None:
            self._restore(g.rewind_to(at, self._token_at))
            return "", False
        end, reason = None, None
        if g.stops and (at := g.find_stop(self.text, self._scanned)) is not None:
            end, reason = at, "stop"
        self._scanned = len(self.text)
        cut = self._stop.feed(self.text) if piece else None
        if cut is not None and (end is None or cut < end):
            end, reason = cut, "length"
        if end is None and last:
            end, reason = len(self.text), "length"
        if end is not None:
            self.text = self.text[:end]
            self.finish_reason = reason
            out, self._sent = self.text[self._sent:], len(self.text)
            return out, True
        safe = len(self.text) - max(g.held(self.text), self._stop.held(self.text))
        if g.bans and safe < len(self.text):  # a rewind goes back a whole token: keep its start too
            safe = max([s.text_len for s in g.ring if s.text_len <= safe] + [self._sent])
        out, self._sent = self.text[self._sent:safe], max(self._sent, safe)
        return out, False

    def _books(self) -> tuple:
        return self.tokens_out, copy.copy(self._stop), self._scanned

    def remember(self, logits, z, c) -> None:
        """Before the token at this position is chosen (a row with banned strings): a snapshot to come
        back to. `logits` (vocab,), `z` and `c` this row's network state (the batch's rows are copied)."""
        assert self.guard is not None
        bg = getattr(self, "bg", None)
        if bg is not None:  # the background model's state too (style strength)
            bg = (bg[0].clone(), type(bg[1])(list(bg[1].h), list(bg[1].c)))
        self.guard.remember(Snapshot(self.tokens_out, len(self.text), self._books(), self._decoder.state(),
                                     (self.proc.state(), self.guard.state(), bg), logits.clone(), z.clone(),
                                     [x.clone() for x in c]))

    def _restore(self, snap: Snapshot) -> None:
        self.text = self.text[: snap.text_len]
        self.tokens_out, stop, self._scanned = snap.books
        self._stop = copy.copy(stop)
        self._decoder.restore(snap.decoder)
        self.proc.restore(snap.proc[0])
        assert self.guard is not None
        self.guard.restore(snap.proc[1])
        if snap.proc[2] is not None:
            self.bg = snap.proc[2]
        for p in [p for p in self._token_at if p >= snap.position]:
            del self._token_at[p]

    # ---- style strength: a background model stepped beside this one --------------------------------------
    def contrast(self, runner, strength: float) -> None:
        """Style strength (classifier-free guidance / DExperts): choose from logits + strength × (logits −
        background's), the background a model with the same tokenizer (the one this model was fine-tuned
        from). Its state steps beside this request's (batch.py); the row is chosen in Python."""
        self.bg_runner, self.strength = runner, float(strength)
        self.bg: tuple | None = None  # (logits (1, V), StepState), primed on the first choice
        self.proc.in_python()

    def bg_ids(self, ids: list[int]) -> list[int]:
        """`ids` for the background model: a fine-tuned char model may have added characters at the end of
        its vocabulary (`train --from`); those are the background's unknown token."""
        V = self.bg_runner.V
        return [i if i < V else 0 for i in ids]

    def give_up(self) -> None:
        """Every token is forbidden here: the text ends (what was held back holds no banned string:
        `tail` hands it over)."""
        self.ended = True
        self.finish_reason = "stop"
        self.note = "the banned strings left nothing the model could write here, so the text ends early"

    def tail(self) -> str:
        """What is still held back, handed over once the request ended without a token (`give_up`)."""
        out, self._sent = self.text[self._sent:], len(self.text)
        return out
