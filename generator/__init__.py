"""ghostwrite's generator: corpora → tokenizers → LSTM language models → samples.

The public Python API, imported lazily so that `import generator` stays cheap (torch loads on first use):

    import generator
    lm = generator.load("shakespeare")               # newest version; "shakespeare@v2" for another
    for piece in lm.generate("ROMEO:", {"length": 3, "unit": "sentences", "seed": 1}):
        print(piece, end="", flush=True)
"""

from __future__ import annotations

from .errors import GhostwriteError
from .sampling import SamplingSettings

__all__ = ["GhostwriteError", "SamplingSettings", "load", "train", "TrainConfig"]


def load(spec: str, version: int | None = None, device: str = "cpu", quantize="auto"):
    from .inference import load as _load

    return _load(spec, version=version, device=device, quantize=quantize)


def train(cfg, on_progress=None) -> dict:
    from .trainer import train as _train

    return _train(cfg, on_progress)


def __getattr__(name):
    if name == "TrainConfig":
        from .trainer import TrainConfig

        return TrainConfig
    raise AttributeError(name)
