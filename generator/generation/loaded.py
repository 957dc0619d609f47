"""A loaded model that writes: `generator.load(name)` → `LoadedModel.generate(prompt, settings)`.

`generate` returns a `Generation`, an iterator of text pieces as they are produced: the prompt primes
the LSTM's state in one pass, then the runner (`FastLSTM`, fastlstm.py: int8 on the CPU when
the model card allows it, fp32 otherwise) samples tokens (sampling.py), many per call where the
settings allow (fastloop.py); each token is decoded as it comes, printable text is handed out
and the output stops at the exact unit boundary asked for. Closing the iterator (or breaking out of the
loop) stops the work.

int8 is the CPU default when the model card says it stays within 0.02 bits/char of fp32 on the
validation split (checked by the trainer with this same code); `quantize=False` keeps fp32.
"""

from __future__ import annotations

import torch

from .. import checkpoint, registry
from ..device import configure_cpu
from ..errors import GhostwriteError
from ..model import LSTMLanguageModel, ModelConfig
from ..tokenizers import tokenizer_from_dict
from .engine import BatchEngine
from .fastlstm import FastLSTM, int8_available
from .output import Output
from .sampling import sample_rows
from .settings import SamplingSettings, check_prompt

__all__ = ["Generation", "LoadedModel", "build_model", "load"]

FIRST_CHUNK, CHUNK = 4, 32  # tokens per compiled call: the first few come at once, then larger strides


def build_model(state: dict, meta: dict) -> LSTMLanguageModel:
    model = LSTMLanguageModel(ModelConfig.from_dict(meta["model"]))
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as e:
        raise GhostwriteError(f"checkpoint does not match its model card: {str(e).splitlines()[0]}") from None
    return model.eval()


class Generation(Output):
    """Iterator of text pieces, one request on the calling thread."""

    def __init__(self, lm: "LoadedModel", prompt: str, settings: SamplingSettings):
        self._ids = self._start(lm, prompt, settings)
        self._it = self._run()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._it)

    def close(self) -> None:
        self._it.close()

    @torch.inference_mode()
    def _run(self):
        runner, proc = self.lm.runner, self.proc
        logits, state = runner.prime(self._ids)
        procs = [proc]
        x = torch.empty(1, dtype=torch.long)
        k = FIRST_CHUNK
        while True:
            got = runner.run_chunk(logits, state, procs, min(k, self.tokens_left()))
            if got is not None:  # many tokens per call (fastloop.py)
                tokens, logits = got
                k = CHUNK
                for nxt in tokens[0].tolist():
                    piece, done = self._emit(nxt)
                    if piece:
                        yield piece
                    if done:
                        return
                continue
            nxt = sample_rows(logits, procs)[0]
            piece, done = self._emit(nxt)
            if piece:
                yield piece
            if done:
                return
            x[0] = nxt
            logits = runner.step(x, state)


class LoadedModel:
    def __init__(self, name: str, version: int, card: dict, model: LSTMLanguageModel, tokenizer, quantize="auto"):
        self.name, self.version, self.card = name, version, card
        self.tokenizer = tokenizer
        self.fp32 = model
        on_cpu = model.embed.weight.device.type == "cpu"
        use_int8 = card.get("int8_ok", False) if quantize == "auto" else bool(quantize)
        use_int8 = use_int8 and on_cpu and int8_available()
        self.int8 = use_int8
        self.runner = FastLSTM(model, int8=use_int8, banned=tokenizer.unk_id)  # what generation steps through
        self._scorer = None
        self._engine = None
        import threading

        self._engine_lock = threading.Lock()

    @property
    def model(self) -> torch.nn.Module:
        """What scoring runs (`ghostwrite eval`): the fp32 model, or its int8 copy when serving int8."""
        if not self.int8:
            return self.fp32
        if self._scorer is None:
            self._scorer = FastLSTM(self.fp32, int8=True)
        return self._scorer

    @property
    def spec(self) -> str:
        return f"{self.name}@v{self.version}"

    def generate(self, prompt: str, settings: SamplingSettings | dict | None = None) -> Generation:
        if not isinstance(settings, SamplingSettings):
            settings = SamplingSettings.from_dict(settings)
        return Generation(self, check_prompt(prompt), settings.validate())

    def complete(self, prompt: str, settings=None) -> str:
        return "".join(self.generate(prompt, settings))

    def engine(self):
        """This model's batching engine (engine.py), started on first use."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = BatchEngine(self)
            return self._engine

    def serve(self, prompt: str, settings: SamplingSettings | dict | None = None):
        """Like `generate`, but stepped together with every other request on this model: one forward
        per token for all of them. Same iterator interface and, for the same seed, the same text."""
        if not isinstance(settings, SamplingSettings):
            settings = SamplingSettings.from_dict(settings)
        return self.engine().submit(check_prompt(prompt), settings.validate())


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
    checkpoint.check_model_set(state.get("model"), meta, tokenizer, card, f"refusing to load {name}@v{version}")
    if torch.device(device).type == "cpu":
        configure_cpu()
    else:
        quantize = False
    model = build_model(state, meta).to(device)
    with torch.inference_mode(False):
        return LoadedModel(name, version, card, model, tokenizer, quantize=quantize)
