"""The language model: embedding → multi-layer LSTM → dropout → output layer.

Reads top to bottom, like nanoGPT's model.py. `nn.LSTM` runs on cuDNN on CUDA and on oneDNN/ATen on the
CPU. The output layer shares its weight with the embedding when their sizes match (weight tying), which
saves parameters and helps small corpora.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class ModelConfig:
    vocab_size: int
    emb_size: int = 256
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.0
    tie_weights: bool = True

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)


# Named sizes. `auto` (the trainer's default) picks one from the time budget, corpus and device.
PRESETS: dict[str, dict] = {
    "tiny": dict(emb_size=64, hidden_size=64, num_layers=1),
    "small": dict(emb_size=256, hidden_size=256, num_layers=1),
    "medium": dict(emb_size=512, hidden_size=512, num_layers=2),
    "large": dict(emb_size=1024, hidden_size=1024, num_layers=3),
}

Hidden = tuple[torch.Tensor, torch.Tensor]


class LSTMLanguageModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        # on the meta device (checkpoint's shape check) nn.Embedding's own normal_ init is skipped: there it
        # goes through torch._refs and imports torch._dynamo, ~1 s of every model load. Elsewhere it runs,
        # though reset_parameters overwrites it, so a seed still gives the same weights as it always did
        meta = torch.get_default_device().type == "meta"
        self.embed = nn.Embedding(c.vocab_size, c.emb_size,
                                  _weight=torch.empty(c.vocab_size, c.emb_size) if meta else None)
        self.lstm = nn.LSTM(
            c.emb_size, c.hidden_size, num_layers=c.num_layers, batch_first=True,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden_size, c.vocab_size)
        self.tied = c.tie_weights and c.emb_size == c.hidden_size
        if self.tied:
            self.head.weight = self.embed.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Small uniform embeddings; LSTM weights uniform in ±1/sqrt(hidden), forget-gate bias 1
        (so the cell remembers from the first step); zero output bias."""
        c = self.config
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        bound = 1.0 / math.sqrt(c.hidden_size)
        for name, p in self.lstm.named_parameters():
            nn.init.uniform_(p, -bound, bound)
            if name.startswith("bias"):
                nn.init.zeros_(p)
                if name.startswith("bias_ih"):
                    p.data[c.hidden_size : 2 * c.hidden_size] = 1.0  # forget gate (i, f, g, o order)
        nn.init.zeros_(self.head.bias)
        if not self.tied:
            nn.init.uniform_(self.head.weight, -bound, bound)

    def forward(self, idx: torch.Tensor, hidden: Hidden | None = None, targets: torch.Tensor | None = None):
        """idx: (batch, time) token ids. Returns (logits (batch, time, vocab), new hidden, loss or None)."""
        x = self.drop(self.embed(idx))
        out, hidden = self.lstm(x, hidden)
        logits = self.head(self.drop(out))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, hidden, loss

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def grow_vocab(state: dict, config: ModelConfig, vocab_size: int, seed: int = 0) -> dict:
    """`state` (of a model of `config`) with rows for symbols `config.vocab_size` .. `vocab_size - 1`
    appended, for fine-tuning on text with characters the model never saw. A new embedding (and, untied,
    output) row is the mean of the known symbols' rows (id 0, the unknown symbol, left out) plus noise of
    a tenth of their spread, seeded; a new output bias is the known symbols' mean bias. So every known
    symbol keeps exactly its logit, and a new symbol's logit starts at the mean of the known ones: its
    probability is the geometric mean of theirs, low but finite, until training says otherwise."""
    old, add = config.vocab_size, vocab_size - config.vocab_size
    if add <= 0:
        return state
    gen = torch.Generator().manual_seed(seed)

    def grow(w: torch.Tensor) -> torch.Tensor:
        known = w[1:].float() if old > 1 else w.float()
        spread = known.std(0, keepdim=True) if len(known) > 1 else torch.zeros_like(known[:1])
        rows = known.mean(0, keepdim=True) + 0.1 * spread * torch.randn(add, w.shape[1], generator=gen)
        return torch.cat([w, rows.to(w.dtype)])

    out = dict(state)
    out["embed.weight"] = grow(state["embed.weight"])
    tied = config.tie_weights and config.emb_size == config.hidden_size
    out["head.weight"] = out["embed.weight"] if tied else grow(state["head.weight"])
    bias = state["head.bias"]
    known_bias = bias[1:] if old > 1 else bias
    out["head.bias"] = torch.cat([bias, known_bias.float().mean().expand(add).to(bias.dtype)])
    return out


def detach_hidden(hidden: Hidden) -> Hidden:
    return hidden[0].detach(), hidden[1].detach()
