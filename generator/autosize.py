"""Defaults that fit the budget: model size, batch, sequence length, learning rate, and on the CPU the
thread count and LSTM backend.

With only `--max-time` given, the trainer asks `plan()` what to train. It times a few training steps
of a probe LSTM on this machine, as it is loaded right now (on the CPU: one thread and all threads,
oneDNN on and off, bf16 autocast on and off; on a busy 2-core Intel machine one thread measured 5-20
times faster than two, on an idle 2-core AMD EPYC with avx512_bf16 two threads with oneDNN and bf16
trained 3-4 times faster than one thread in fp32), keeps the fastest setting, estimates from it how many tokens each candidate size would see in the budget, and
takes the size that the measurements in bench/NOTES.md say learns most in that many tokens.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .model import LSTMLanguageModel, ModelConfig

HIDDEN_SIZES = (128, 192, 256, 320, 384, 512, 768, 1024)
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
    amp: str | None = None  # "bf16": autocast on the CPU, where it measured faster

    def model_dict(self) -> dict:
        return dict(emb_size=self.emb_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    dropout=self.dropout)


def step_flops(hidden: int, emb: int, layers: int, vocab: int) -> float:
    """Multiply-adds per token of one forward pass, times 3 for forward + backward."""
    lstm = 4 * hidden * (emb + hidden) + 4 * hidden * (2 * hidden) * (layers - 1)
    return 3.0 * 2 * (lstm + hidden * vocab)


def _time_steps(device: torch.device, vocab: int, batch: int, seq: int, hidden: int, steps: int = 2,
                give_up: float = math.inf, amp: torch.dtype | None = None) -> float:
    """Median seconds per training step (forward, backward, AdamW) of a 1-layer probe LSTM."""
    torch.manual_seed(0)
    model = LSTMLanguageModel(ModelConfig(vocab_size=vocab, emb_size=hidden, hidden_size=hidden)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, vocab, (batch, seq), device=device)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=amp, enabled=amp is not None):
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


def tune_cpu(vocab: int, batch: int, seq: int) -> tuple[int, bool, str | None, float]:
    """Time the probe with one thread and with every core, oneDNN on and off, and bf16 autocast (oneDNN's
    bf16 LSTM) where the CPU has bf16 instructions; leave the fastest set. Every core is timed even when
    the load average says the machine is busy: the timing, not a guess, decides (see configure_cpu).
    Returns (threads, mkldnn, amp, seconds per step of the probe)."""
    from .device import cores, cpu_has_bf16, threads_forced

    counts = [torch.get_num_threads()] if threads_forced() else sorted({1, cores()}, reverse=True)
    amps = [None, "bf16"] if cpu_has_bf16() else [None]
    options = [(n, mkldnn, amp) for n in counts for mkldnn in (True, False) for amp in amps
               if not (amp and not mkldnn)]  # bf16 without oneDNN falls back to slow reference kernels
    timed: dict = {}

    def time_option(opt, give_up=math.inf) -> float:
        threads, mkldnn, amp = opt
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = mkldnn
        dt = _time_steps(torch.device("cpu"), vocab, batch, seq, PROBE_HIDDEN, give_up=give_up,
                         amp=torch.bfloat16 if amp else None)
        timed[opt] = min(dt, timed.get(opt, math.inf))
        return dt

    for opt in options:
        time_option(opt, give_up=1.5 * min(timed.values()) if timed else math.inf)
    for opt in sorted(timed, key=timed.get)[:2]:  # a second look at the two fastest: one noisy step
        time_option(opt)                            # must not decide the whole run
    threads, mkldnn, amp = best = min(timed, key=timed.get)
    dt = timed[best]
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mkldnn
    return threads, mkldnn, amp, dt


def measure_flops(device: torch.device, vocab: int, batch: int, seq: int) -> float:
    """Effective training FLOP/s on this device for a mid-sized LSTM (a short timed run)."""
    h = PROBE_HIDDEN if device.type == "cpu" else 1024
    dt = _time_steps(device, vocab, batch, seq, h)
    return step_flops(h, h, 1, vocab) * batch * seq / dt


def plan(budget_s: float | None, train_tokens: int, vocab: int, device: torch.device) -> Plan:
    cpu = device.type == "cpu"
    # on the CPU short windows, many updates and a high learning rate learn most per second (bench/NOTES.md:
    # 60 s on tinyshakespeare, 1x256: 32x128 at lr 3e-3 reached 1.59 nats/char, 32x32 at 1.5e-2 1.47)
    batch, seq = (32, 32) if cpu else (128, 256)
    if budget_s is None:  # no budget: a solid medium model
        return Plan(512, 512, 2, batch, 128 if cpu else seq, 2e-3, 0.2 if train_tokens < 5_000_000 else 0.1)
    threads = mkldnn = amp = None
    if cpu:
        probe_b, probe_t = 32, 64
        threads, mkldnn, amp, dt = tune_cpu(vocab, probe_b, probe_t)
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
            # (60 s measured 1x384 best at 2.2M tokens; a deeper stack needs more: 2x256 lost to 1x256 by 0.07)
            if tokens >= 1.5 * params * layers and tokens >= min(train_tokens, 2_000_000) * 0.5:
                if best is None or params > best[0]:
                    best = (params, h, layers, rate)
    if best is None:
        best = (0, HIDDEN_SIZES[0], 1, flops / step_flops(HIDDEN_SIZES[0], HIDDEN_SIZES[0], 1, vocab))
    _, h, layers, rate = best
    epochs = rate * train_s / max(train_tokens, 1)
    dropout = 0.0 if epochs < 4 else (0.1 if epochs < 10 else 0.25)  # a few passes do not overfit
    if cpu:  # measured: 1.5e-2 at 256 and 1.2e-2 at 320 beat 6e-3 and 1e-2 (clipping keeps it stable)
        lr = min(1.5e-2, 1.5e-2 * 256 / h)
    else:
        lr = 3e-3 if h <= 384 else 2e-3
    return Plan(h, h, layers, batch, seq, lr, dropout, est_tokens_per_s=rate, threads=threads, mkldnn=mkldnn,
                amp=amp)
