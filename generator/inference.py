"""A loaded model that writes: `generator.load(name)` → `LoadedModel.generate(prompt, settings)`.

`generate` returns a `Generation`, an iterator of text pieces as they are produced: the prompt primes
the LSTM's state in one pass, then each step samples one token, decodes what is printable and stops at
the exact unit boundary asked for. Closing the iterator (or breaking out of the loop) stops the work.
On the CPU the LSTM and output layer run as int8 dynamic quantization when the model card says that
path stays within 0.02 bits/char of fp32; `quantize=False` keeps fp32.
"""

from __future__ import annotations

import secrets
import warnings

import torch

from . import checkpoint, registry
from .device import configure_cpu
from .errors import GhostwriteError
from .model import LSTMLanguageModel, ModelConfig
from .sampling import SamplingSettings, StopRule, check_prompt, token_cap
from .tokenizers import tokenizer_from_dict

CONTEXT_CHARS = 4_000  # how much of a long prompt (a growing story) primes the state
PRIME_CHUNK = 512


def quantize_int8(model: LSTMLanguageModel) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8)


def build_model(state: dict, meta: dict) -> LSTMLanguageModel:
    model = LSTMLanguageModel(ModelConfig.from_dict(meta["model"]))
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as e:
        raise GhostwriteError(f"checkpoint does not match its model card: {str(e).splitlines()[0]}") from None
    return model.eval()


class LogitsProcessor:
    """Turns one row of logits into the next token: repetition penalty, temperature, top-k, top-p."""

    def __init__(self, settings: SamplingSettings, vocab_size: int, window: int = 64, banned: int | None = None):
        self.s = settings
        self.banned = banned  # the unknown token: a placeholder for input, never something to write
        self.window = window
        self.recent: list[int] = []
        self.counts = torch.zeros(vocab_size, dtype=torch.int32) if settings.repetition_penalty != 1.0 else None
        self.generator = torch.Generator().manual_seed(int(settings.seed or 0))

    def observe(self, token: int) -> None:
        if self.counts is None:
            return
        self.recent.append(token)
        self.counts[token] += 1
        if len(self.recent) > self.window:
            self.counts[self.recent.pop(0)] -= 1

    def __call__(self, logits: torch.Tensor) -> int:
        logits = logits.float()
        if self.banned is not None:
            logits = logits.clone()
            logits[self.banned] = float("-inf")
        s = self.s
        if self.counts is not None:
            seen = self.counts > 0
            pen = torch.where(logits > 0, logits / s.repetition_penalty, logits * s.repetition_penalty)
            logits = torch.where(seen, pen, logits)
        if s.temperature == 0:
            return int(torch.argmax(logits))
        logits = logits / s.temperature
        idx = None
        if s.top_k and s.top_k < logits.numel():
            logits, idx = torch.topk(logits, s.top_k)
        if s.top_p < 1.0:
            logits, order = torch.sort(logits, descending=True)
            idx = order if idx is None else idx[order]
            probs = torch.softmax(logits, dim=-1)
            keep = torch.cumsum(probs, dim=-1) - probs < s.top_p  # always keeps the most likely token
            logits = logits.masked_fill(~keep, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        choice = int(torch.multinomial(probs, 1, generator=self.generator))
        return int(idx[choice]) if idx is not None else choice


class LoadedModel:
    def __init__(self, name: str, version: int, card: dict, model: LSTMLanguageModel, tokenizer, quantize="auto"):
        self.name, self.version, self.card = name, version, card
        self.tokenizer = tokenizer
        self.fp32 = model
        use_int8 = card.get("int8_ok", False) if quantize == "auto" else bool(quantize)
        self.model = quantize_int8(model) if use_int8 else model
        self.int8 = use_int8

    @property
    def spec(self) -> str:
        return f"{self.name}@v{self.version}"

    def generate(self, prompt: str, settings: SamplingSettings | dict | None = None) -> "Generation":
        if not isinstance(settings, SamplingSettings):
            settings = SamplingSettings.from_dict(settings)
        return Generation(self, check_prompt(prompt), settings.validate())

    def complete(self, prompt: str, settings=None) -> str:
        return "".join(self.generate(prompt, settings))


class Generation:
    """Iterator of text pieces. After it ends: `.text`, `.tokens_in`, `.tokens_out`, `.seed`."""

    def __init__(self, lm: LoadedModel, prompt: str, settings: SamplingSettings):
        if settings.seed is None:
            settings = SamplingSettings(**{**settings.to_dict(), "seed": secrets.randbits(31)})
        self.lm, self.prompt, self.settings = lm, prompt, settings
        self.seed = settings.seed
        self.text = ""
        self.tokens_in = 0
        self.tokens_out = 0
        self._it = self._run()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._it)

    def close(self) -> None:
        self._it.close()

    @torch.inference_mode()
    def _run(self):
        lm, s = self.lm, self.settings
        tok = lm.tokenizer
        context = self.prompt[-CONTEXT_CHARS:] or "\n"
        ids = tok.encode(context) or [tok.unk_id]
        self.tokens_in = len(ids)
        proc = LogitsProcessor(s, tok.vocab_size, banned=tok.unk_id)
        for t in ids[-proc.window:]:
            proc.observe(t)
        model = lm.model
        hidden = None
        for start in range(0, len(ids), PRIME_CHUNK):
            x = torch.tensor([ids[start : start + PRIME_CHUNK]], dtype=torch.long)
            logits, hidden, _ = model(x, hidden)
        logits = logits[0, -1]
        stop = StopRule(s.unit, s.length)
        decoder = tok.stream_decoder()
        cap = token_cap(s)
        x = torch.empty((1, 1), dtype=torch.long)
        while self.tokens_out < cap:
            nxt = proc(logits)
            proc.observe(nxt)
            self.tokens_out += 1
            piece = decoder.feed(nxt)
            if self.tokens_out >= cap or (s.unit == "tokens" and self.tokens_out >= s.length):
                piece += decoder.flush()
            if piece:
                before = len(self.text)
                self.text += piece
                cut = stop.feed(self.text)
                if cut is not None:
                    self.text = self.text[:cut]
                    if len(self.text) > before:
                        yield self.text[before:]
                    return
                yield piece
            if s.unit == "tokens" and self.tokens_out >= s.length:
                return
            x[0, 0] = nxt
            logits, hidden, _ = model(x, hidden)
            logits = logits[0, -1]


def load(spec: str, version: int | None = None, device: str = "cpu", quantize="auto") -> LoadedModel:
    """Load `NAME` (newest version), `NAME@vN`, or NAME with `version`. Models trained on a GPU load
    on the CPU: every tensor is mapped to `device` on the way in."""
    name, version = registry.resolve(spec, version)
    folder = registry.model_dir(name, version)
    card = registry.read_card(name, version)
    state, meta = checkpoint.load(folder / "model.pt", map_location=device)
    try:
        import json

        tokenizer = tokenizer_from_dict(json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError) as e:
        raise GhostwriteError(f"unreadable tokenizer for {name}@v{version}: {e}") from None
    if torch.device(device).type == "cpu":
        configure_cpu()
    else:
        quantize = False
    model = build_model(state, meta).to(device)
    return LoadedModel(name, version, card, model, tokenizer, quantize=quantize)
