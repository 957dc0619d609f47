"""One generation request's bookkeeping, the same whichever path steps it (`single.Generation` on the
caller's thread, `engine.BatchedGeneration` in the batching engine): the prompt and settings checked, the
seed drawn when none is given, the prompt's tail encoded and the repetition window primed with it, then
each sampled token decoded as it comes, counted, and the output cut at the exact stop (stopping.py) or at
the token cap. No torch calls here besides the token choice's own state (sampling.py).
"""

from __future__ import annotations

import secrets

from .sampling import LogitsProcessor
from .settings import CONTEXT_CHARS, SamplingSettings, check_prompt  # (how much of a prompt primes the state)
from .stopping import StopRule, token_cap


class GenerationRequest:
    """A prompt and its settings on a loaded model. `.ids` is what primes the network; `emit(token)`
    records each sampled token. After it ends: `.text`, `.tokens_in`, `.tokens_out`, `.seed`."""

    def __init__(self, tokenizer, prompt: str, settings: SamplingSettings | dict | None, logprobs: int = 0):
        if not isinstance(settings, SamplingSettings):
            settings = SamplingSettings.from_dict(settings)
        prompt = check_prompt(prompt)
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
        ids = tokenizer.encode(prompt[-CONTEXT_CHARS:] or "\n") or [tokenizer.unk_id]
        self.ids = ids
        self.tokens_in = len(ids)
        self.proc = LogitsProcessor(settings, tokenizer.vocab_size, banned=tokenizer.unk_id, logprobs=logprobs)
        # logprobs > 0: one entry per token, (its text, its log-probability, [(alternative, log-prob)...])
        self.logprobs: list[tuple[str, float, list[tuple[str, float]]]] | None = [] if logprobs else None
        self._tokenizer = tokenizer
        for t in ids[-self.proc.window:]:
            self.proc.observe(t)
        self._stop = StopRule(settings.unit, settings.length)
        self._decoder = tokenizer.stream_decoder()
        self._cap = token_cap(settings)
        self._by_tokens = settings.unit == "tokens"

    def tokens_left(self) -> int:
        """Tokens the cap still allows (at least 1)."""
        return max(1, self._cap - self.tokens_out)

    def emit(self, token: int) -> tuple[str, bool]:
        """Take one sampled token: (text that became printable, whether the output is complete)."""
        piece, done = self._emit(token)
        if self.logprobs is not None and self.proc.noted is not None:
            lp, top = self.proc.noted
            self.proc.noted = None
            decode = self._tokenizer.decode
            self.logprobs.append((piece, lp, [(decode([t]), v) for t, v in top]))
        return piece, done

    def _emit(self, token: int) -> tuple[str, bool]:
        self.proc.observe(token)
        self.tokens_out += 1
        n = self.tokens_out
        last = n >= self._cap or (self._by_tokens and n >= self.settings.length)
        piece = self._decoder.feed(token)
        if last:
            piece += self._decoder.flush()
        if piece:
            before = len(self.text)
            self.text += piece
            cut = self._stop.feed(self.text)
            if cut is not None:
                self.text = self.text[:cut]
                self.finish_reason = "length"
                return self.text[before:], True
        if last:
            self.finish_reason = "length"
        return piece, last
