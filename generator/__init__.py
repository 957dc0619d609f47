"""ghostwrite's generator: corpora → tokenizers → LSTM language models → samples.

The public Python API, imported lazily so that `import generator` stays cheap (torch loads on first use):

    import generator
    lm = generator.load("shakespeare")               # newest version; "shakespeare@v2" for another
    for piece in lm.generate("ROMEO:", {"length": 3, "unit": "sentences", "seed": 1}):
        print(piece, end="", flush=True)
"""

from __future__ import annotations

import os

# OpenMP threads that sleep instead of spinning while they wait. Set before torch loads its OpenMP
# runtime (this package is imported before torch everywhere). On a busy machine spinning threads made a
# training step 5-10x slower on 2 cores (bench/NOTES.md); on an idle one the difference is noise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import GhostwriteError  # noqa: E402
from .sampling import SamplingSettings  # noqa: E402

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
