"""Defaults that fit the budget: model size, batch, sequence length, learning rate, and on the CPU the
thread count and LSTM backend.

With only `--max-time` given, the trainer asks `plan()` what to train. It times a few training steps
of a probe LSTM on this machine, as it is loaded right now (one thread and all threads, oneDNN on and
off on the CPU: on a busy 2-core machine one thread measured 5-20 times faster than two), keeps the
fastest setting, estimates from it how many tokens each candidate size would see in the budget, and
takes the size that the measurements in bench/NOTES.md say learns most in that many tokens.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .model import LSTMLanguageModel, ModelConfig

HIDDEN_SIZES = (128, 192, 256, 384, 512, 768, 1024)
PROBE_HIDDEN = 256
TRAIN_SHARE = 0.85  # of the budget, left for training steps after start-up, validation and the final eval


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
    threads: int | None = None
    mkldnn: bool | None = None

    def model_dict(self) -> dict:
        return dict(emb_size=self.emb_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    dropout=self.dropout)


def step_flops(hidden: int, emb: int, layers: int, vocab: int) -> float:
    """Multiply-adds per token of one forward pass, times 3 for forward + backward."""
    lstm = 4 * hidden * (emb + hidden) + 4 * hidden * (2 * hidden) * (layers - 1)
    return 3.0 * 2 * (lstm + hidden * vocab)


def _time_steps(device: torch.device, vocab: int, batch: int, seq: int, hidden: int, steps: int = 2,
                give_up: float = math.inf) -> float:
    """Median seconds per training step (forward, backward, AdamW) of a 1-layer probe LSTM."""
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(vocab_size=vocab, emb_size=hidden, hidden_size=hidden)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, vocab, (batch, seq), device=device)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        _, _, loss = model(x, None, x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if i:
            times.append(dt)
        if dt > give_up:  # hopeless next to a setting already timed: stop paying for it
            return dt
    return sorted(times)[len(times) // 2]


def tune_cpu(vocab: int, batch: int, seq: int) -> tuple[int, bool, float]:
    """Time the probe with one thread and with every core, oneDNN on and off; leave the fastest set.
    Returns (threads, mkldnn, seconds per step of the probe)."""
    from .device import default_threads, threads_forced

    if threads_forced():
        counts = [torch.get_num_threads()]
    else:  # every core only when the load average says they are free (else it stalls: see configure_cpu)
        counts = sorted({1, default_threads()})
    options = [(n, mkldnn) for n in counts for mkldnn in (True, False)]
    best = None
    for threads, mkldnn in options:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = mkldnn
        dt = _time_steps(torch.device("cpu"), vocab, batch, seq, PROBE_HIDDEN,
                         give_up=1.5 * best[2] if best else math.inf)
        if best is None or dt < best[2]:
            best = (threads, mkldnn, dt)
    threads, mkldnn, dt = best
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mkldnn
    return threads, mkldnn, dt


def measure_flops(device: torch.device, vocab: int, batch: int, seq: int) -> float:
    """Effective training FLOP/s on this device for a mid-sized LSTM (a short timed run)."""
    h = PROBE_HIDDEN if device.type == "cpu" else 1024
    dt = _time_steps(device, vocab, batch, seq, h)
    return step_flops(h, h, 1, vocab) * batch * seq / dt


def plan(budget_s: float | None, train_tokens: int, vocab: int, device: torch.device) -> Plan:
    cpu = device.type == "cpu"
    batch, seq = (32, 128) if cpu else (128, 256)
    if budget_s is None:  # no budget: a solid medium model
        return Plan(512, 512, 2, batch, seq, 2e-3, 0.2 if train_tokens < 5_000_000 else 0.1)
    threads = mkldnn = None
    if cpu:
        probe_b, probe_t = 32, 32
        threads, mkldnn, dt = tune_cpu(vocab, probe_b, probe_t)
        flops = step_flops(PROBE_HIDDEN, PROBE_HIDDEN, 1, vocab) * probe_b * probe_t / dt
    else:
        flops = measure_flops(device, vocab, batch, seq)
    train_s = max(budget_s * TRAIN_SHARE, 1.0)
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
    return Plan(h, h, layers, batch, seq, lr, dropout, est_tokens_per_s=rate, threads=threads, mkldnn=mkldnn)
