"""One request's output, shared by the single-stream path (`loaded.Generation`) and the batching engine
(`engine.BatchedGeneration`): the prompt primes the token choice, tokens are decoded as they come and the
output is cut at the exact stop.
"""

from __future__ import annotations

import secrets

from .sampling import LogitsProcessor
from .settings import SamplingSettings
from .stopping import StopRule, token_cap

CONTEXT_CHARS = 4_000  # how much of a long prompt (a growing story) primes the state


class Output:
    """Text bookkeeping shared by `Generation` and batched generations: decodes tokens as they come and
    finds the exact stop. After it ends: `.text`, `.tokens_in`, `.tokens_out`, `.seed`."""

    def _start(self, lm, prompt: str, settings: SamplingSettings) -> list[int]:
        if settings.seed is None:
            settings = SamplingSettings(**{**settings.to_dict(), "seed": secrets.randbits(31)})
        self.lm, self.prompt, self.settings = lm, prompt, settings
        self.seed = settings.seed
        self.text = ""
        self.tokens_out = 0
        tok = lm.tokenizer
        context = prompt[-CONTEXT_CHARS:] or "\n"
        ids = tok.encode(context) or [tok.unk_id]
        self.tokens_in = len(ids)
        self.proc = LogitsProcessor(settings, tok.vocab_size, banned=tok.unk_id)
        for t in ids[-self.proc.window:]:
            self.proc.observe(t)
        self._stop = StopRule(settings.unit, settings.length)
        self._decoder = tok.stream_decoder()
        self._cap = token_cap(settings)
        self._by_tokens = settings.unit == "tokens"
        return ids

    def tokens_left(self) -> int:
        """Tokens the cap still allows (at least 1)."""
        return max(1, self._cap - self.tokens_out)

    def _emit(self, token: int) -> tuple[str, bool]:
        """Take one sampled token: (text that became printable, whether the output is complete)."""
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
                return self.text[before:], True
        return piece, last
