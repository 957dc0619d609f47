"""Defaults that fit the budget: model size, batch, sequence length and learning rate.

With only `--max-time` given, the trainer asks `plan()` what to train. It measures how fast this
machine runs an LSTM training step (a fraction of a second), estimates how many tokens each candidate
size would see in the budget, and takes the largest model that still sees enough of the corpus.
Measurements behind the numbers are in bench/NOTES.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .model import LSTMLanguageModel, ModelConfig

HIDDEN_SIZES = (128, 192, 256, 384, 512, 768, 1024)


@dataclass
class Plan:
    emb_size: int
    hidden_size: int
    num_layers: int
    batch_size: int
    seq_len: int
    lr: float
    dropout: float
    est_tokens_per_s: float = 0.0

    def model_dict(self) -> dict:
        return dict(emb_size=self.emb_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    dropout=self.dropout)


def step_flops(hidden: int, emb: int, layers: int, vocab: int) -> float:
    """Multiply-adds per token of one forward pass, times 3 for forward + backward."""
    lstm = 4 * hidden * (emb + hidden) + 4 * hidden * (2 * hidden) * (layers - 1)
    return 3.0 * 2 * (lstm + hidden * vocab)


def measure_flops(device: torch.device, vocab: int, batch: int, seq: int) -> float:
    """Effective training FLOP/s on this device for a mid-sized LSTM (a short timed run)."""
    h = 256 if device.type == "cpu" else 1024
    model = LSTMLanguageModel(ModelConfig(vocab_size=vocab, emb_size=h, hidden_size=h)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, vocab, (batch, seq), device=device)
    times = []
    for i in range(4):
        t0 = time.perf_counter()
        _, _, loss = model(x, None, x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    dt = sorted(times)[len(times) // 2]
    return step_flops(h, h, 1, vocab) * batch * seq / dt


def plan(budget_s: float | None, train_tokens: int, vocab: int, device: torch.device) -> Plan:
    cpu = device.type == "cpu"
    batch, seq = (32, 128) if cpu else (128, 256)
    if budget_s is None:  # no budget: a solid medium model
        return Plan(512, 512, 2, batch, seq, 2e-3, 0.2 if train_tokens < 5_000_000 else 0.1)
    flops = measure_flops(device, vocab, batch, seq)
    train_s = max(budget_s * 0.8, 1.0)
    best = None
    for layers in (1, 2, 3):
        for h in HIDDEN_SIZES:
            rate = flops / step_flops(h, h, layers, vocab)
            tokens = rate * train_s
            params = 4 * h * (2 * h) * layers + h * vocab
            # enough passes over the data for the size: ~2 tokens seen per parameter, at least half an epoch
            if tokens >= 2.0 * params and tokens >= min(train_tokens, 2_000_000) * 0.5:
                if best is None or params > best[0]:
                    best = (params, h, layers, rate)
    if best is None:
        best = (0, HIDDEN_SIZES[0], 1, flops / step_flops(HIDDEN_SIZES[0], HIDDEN_SIZES[0], 1, vocab))
    _, h, layers, rate = best
    epochs = rate * train_s / max(train_tokens, 1)
    dropout = 0.0 if epochs < 2 else (0.1 if epochs < 6 else 0.25)
    lr = 3e-3 if h <= 384 else 2e-3
    return Plan(h, h, layers, batch, seq, lr, dropout, est_tokens_per_s=rate)
