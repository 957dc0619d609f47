"""One request stepped on the calling thread: `LoadedModel.generate(prompt, settings)` returns a
`Generation`, an iterator of text pieces as they are produced.

The prompt primes the network in one pass (`FastLSTM.prime`), then the request advances as a batch of
one row (batch.py): a few tokens in the first compiled call, so the first piece comes at once, then
larger strides, each cut to what the token cap still allows. Tokens are decoded as they are read:
closing the iterator (or breaking out of the loop) stops the work, and `.text` and `.tokens_out` keep
what was read. For the same seed the text is the batching engine's (engine.py).
"""

from __future__ import annotations

import torch

from .batch import Batch
from .request import GenerationRequest
from .settings import SamplingSettings

FIRST_CHUNK, CHUNK = 4, 32  # tokens per compiled call: the first few come at once, then larger strides


class Generation(GenerationRequest):
    """Iterator of text pieces, one request on the calling thread."""

    def __init__(self, lm, prompt: str, settings: SamplingSettings | dict | None, logprobs: int = 0):
        super().__init__(lm.tokenizer, prompt, settings, logprobs)
        self._runner = lm.runner
        self._it = self._run()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._it)

    def close(self) -> None:
        self._it.close()
        self.text = self.text[: self._sent]  # what was read (not what was held back: a paragraph's newline)

    @torch.inference_mode()
    def _run(self):
        batch = Batch(self._runner)
        batch.add([(self, *self._runner.prime(self.ids))])
        k = FIRST_CHUNK
        while True:
            for token in batch.choose(min(k, self.tokens_left()))[0]:  # decoded one by one as they are read
                piece, done = self.emit(token)
                if piece:
                    yield piece
                if done:
                    return
            if self.ended:  # a ban left nothing to write here (guard.py)
                if rest := self.tail():
                    yield rest
                return
            batch.advance([0])
            k = CHUNK
