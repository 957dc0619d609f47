"""ghostwrite's generator: corpora → tokenizers → LSTM language models → samples.

The public Python API, imported lazily so that `import generator` stays cheap (torch loads on first use):

    import generator
    lm = generator.load("shakespeare")               # newest version; "shakespeare@v2" for another
    for piece in lm.generate("ROMEO:", {"length": 3, "unit": "sentences", "seed": 1}):
        print(piece, end="", flush=True)
"""

from __future__ import annotations

import os

# OpenMP threads spin a short while (GOMP_SPINCOUNT) before they sleep while they wait. Set before torch
# loads its OpenMP runtime (this package is imported before torch everywhere). An LSTM runs one small
# parallel region per time step: sleeping at once (OMP_WAIT_POLICY=PASSIVE) made 2-thread training
# 1.7-2x slower on an idle 2-core machine, while spinning without limit burns a core a busy machine
# needs. The trainer times 1 and all threads anyway and keeps the faster (bench/NOTES.md).
os.environ.setdefault("GOMP_SPINCOUNT", "20000")

from .errors import GhostwriteError  # noqa: E402
from .generation.settings import SETTINGS, SamplingSettings  # noqa: E402  (SETTINGS: the settings contract)

__all__ = ["GhostwriteError", "SETTINGS", "SamplingSettings", "load", "train", "TrainConfig"]


def load(spec: str, version: int | None = None, device: str = "cpu", quantize="auto"):
    from .generation.loaded import load as _load

    return _load(spec, version=version, device=device, quantize=quantize)


def train(cfg, on_progress=None) -> dict:
    from .training.trainer import train as _train

    return _train(cfg, on_progress)


def __getattr__(name):
    if name == "TrainConfig":
        from .training.trainer import TrainConfig

        return TrainConfig
    raise AttributeError(name)
