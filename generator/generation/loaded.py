"""A loaded model that writes: `generator.load(name)` → `LoadedModel`, the handle both generation paths
start from.

`generate(prompt, settings)` steps one request on the calling thread (single.py); `serve(prompt,
settings)` hands it to the model's batching engine (engine.py), stepped together with every other request
on the model. Both return an iterator of text pieces with the same bookkeeping (request.py) and, for the
same seed, the same text. The runner they step through is `FastLSTM` (fastlstm.py): int8 on the CPU when
the model card allows it, fp32 otherwise.

int8 is the CPU default when the model card says it stays within 0.02 bits/char of fp32 on the
validation split (checked by the trainer with this same code); `quantize=False` keeps fp32.
"""

from __future__ import annotations

import json
import threading

import torch

from .. import checkpoint, registry
from ..device import configure_cpu
from ..errors import GhostwriteError
from ..model import LSTMLanguageModel, ModelConfig
from ..tokenizers import tokenizer_from_dict
from .engine import BatchedGeneration, BatchEngine
from .fastlstm import FastLSTM, int8_available
from .settings import SamplingSettings
from .single import Generation
from .stories import StoryStates

__all__ = ["Generation", "LoadedModel", "build_model", "load"]


def build_model(state: dict, meta: dict) -> LSTMLanguageModel:
    model = LSTMLanguageModel(ModelConfig.from_dict(meta["model"]))
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as e:
        raise GhostwriteError(f"checkpoint does not match its model card: {str(e).splitlines()[0]}") from None
    return model.eval()


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
        self._scorer: FastLSTM | None = None
        self._engine: BatchEngine | None = None
        self._engine_lock = threading.Lock()
        self.stories = StoryStates()  # stories' states, carried over from turn to turn (stories.py)

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

    def generate(self, prompt: str, settings: SamplingSettings | dict | None = None, logprobs: int = 0) -> Generation:
        """One request on the calling thread: an iterator of text pieces as they are produced."""
        return Generation(self, prompt, settings, logprobs)

    def complete(self, prompt: str, settings=None) -> str:
        return "".join(self.generate(prompt, settings))

    def engine(self) -> BatchEngine:
        """This model's batching engine (engine.py), started on first use."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = BatchEngine(self)
            return self._engine

    def serve(self, prompt: str, settings: SamplingSettings | dict | None = None,
              logprobs: int = 0, story: str | None = None) -> BatchedGeneration:
        """Like `generate`, but stepped together with every other request on this model: one forward
        per token for all of them. Same iterator interface and, for the same seed, the same text.
        `logprobs` > 0: `.logprobs` lists each token's log-probability and that many alternatives.
        `story`: a story's key; `prompt` is then its whole text, primed from the state its last turn
        left (stories.py: only the new text runs; an edited story is primed again)."""
        return self.engine().submit(prompt, settings, logprobs, story)


def load(spec: str, version: int | None = None, device: str = "cpu", quantize="auto") -> LoadedModel:
    """Load `NAME` (newest version), `NAME@vN`, or NAME with `version`. Models trained on a GPU load
    on the CPU: every tensor is mapped to `device` on the way in."""
    name, version = registry.resolve(spec, version)
    folder = registry.model_dir(name, version)
    card = registry.read_card(name, version)
    state, meta = checkpoint.load(folder / "model.pt", map_location=device)
    try:
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
