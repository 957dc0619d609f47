"""Defaults that fit the budget: model size, batch, sequence length, learning rate, and on the CPU the
thread count and LSTM backend.

With only `--max-time` given, the trainer asks `plan()` what to train. It times a few training steps
of a probe LSTM on this machine, as it is loaded right now (on the CPU: one thread and all threads,
oneDNN on and off, bf16 autocast on and off; on a busy 2-core Intel machine one thread measured 5-20
times faster than two, on an idle 2-core AMD EPYC with avx512_bf16 two threads with oneDNN and bf16
trained 3-4 times faster than one thread in fp32), keeps the fastest setting, estimates from it how many tokens each candidate size would see in the budget, and
takes the size that the measurements in bench/NOTES.md say learns most in that many tokens.

A probe at the start sees the machine as it is in those seconds. During the run `Watch` says when to time
it again (`reprobe`): once at the end of the calibration (~8% of the budget), then when the step time has
moved by more than 30% or a core has come free; the trainer keeps the settings measured fastest then, and
after the first of these, early in the run, rebuilds a larger model if the machine turned out faster than
the first probe said (a slow start must not shrink the model for good).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace

import torch

from ..model import LSTMLanguageModel, ModelConfig

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
    probe_flops: float = 0.0  # training FLOP/s of the probe as measured
    probe_s: float = 0.0  # how long the probe took

    def model_dict(self) -> dict:
        return dict(emb_size=self.emb_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    dropout=self.dropout)


def params(hidden: int, layers: int, vocab: int) -> int:
    """About how many weights a model of this size has (embedding tied to the output layer)."""
    return 4 * hidden * (2 * hidden) * layers + hidden * vocab


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
        if dt > give_up * (1 if i else 4):  # hopeless next to a setting already timed: stop paying for it
            return dt  # (the first step, which may build kernels for a new setting, gets 4x the margin)
    return sorted(times)[len(times) // 2]


def tune_cpu(vocab: int, batch: int, seq: int, keep: tuple[bool, str | None] | None = None
             ) -> tuple[int, bool, str | None, float]:
    """Time the probe with one thread and with every core, oneDNN on and off, and bf16 autocast (oneDNN's
    bf16 LSTM) where the CPU has bf16 instructions; leave the fastest set. Every core is timed even when
    the load average says the machine is busy: the timing, not a guess, decides (see configure_cpu).
    `keep` (mkldnn, amp): time the thread counts only, with that backend (a re-probe during a run: load
    moves the best thread count, not the best kernels; a third of the cost, which a busy machine makes
    seconds). Returns (threads, mkldnn, amp, seconds per step of the probe)."""
    from ..device import cores, cpu_has_bf16, threads_forced

    amps = [None, "bf16"] if cpu_has_bf16() else [None]

    def options(n: int) -> list:
        if keep is not None:
            return [(n, *keep)]
        return [(n, mkldnn, amp) for mkldnn in (True, False) for amp in amps
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

    # one thread first, watching what the other processes use meanwhile: on a 2-core machine with one
    # core busy a step with both took 1-5 s (one thread: 0.1 s), so every core is timed only when
    # the others leave at least half a core idle (seen in /proc/stat now, not the lagging load average)
    load = Load()
    for opt in options(torch.get_num_threads() if threads_forced() else 1):
        time_option(opt, give_up=1.5 * min(timed.values()) if timed else math.inf)
    n = cores() if not threads_forced() else 1
    others = load.others()
    if others is not None:
        n = min(n, 1 + int(cores() - 1 - others + 0.5))
    for opt in options(n) if n > 1 else []:
        time_option(opt, give_up=1.5 * min(timed.values()))
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


def plan(budget_s: float | None, train_tokens: int, vocab: int, device: torch.device, probe=None) -> Plan:
    """What to train in `budget_s` seconds. `probe(vocab)` -> (threads, mkldnn, amp, FLOP/s) times the CPU
    (`_probe_cpu`; a test passes a simulated machine's)."""
    cpu = device.type == "cpu"
    # on the CPU short windows, many updates and a high learning rate learn most per second (bench/NOTES.md:
    # 60 s on tinyshakespeare, 1x256: 32x128 at lr 3e-3 reached 1.59 nats/char, 32x32 at 1.5e-2 1.47)
    batch, seq = (32, 32) if cpu else (128, 256)
    if budget_s is None:  # no budget: a solid medium model
        return Plan(512, 512, 2, batch, 128 if cpu else seq, 2e-3, 0.2 if train_tokens < 5_000_000 else 0.1)
    threads = mkldnn = amp = None
    t0 = time.perf_counter()
    if cpu:
        threads, mkldnn, amp, flops = (probe or _probe_cpu)(vocab)
    else:
        flops = measure_flops(device, vocab, batch, seq)
    p = choose(flops, budget_s, train_tokens, vocab, cpu)
    return replace(p, threads=threads, mkldnn=mkldnn, amp=amp, probe_flops=flops,
                   probe_s=round(time.perf_counter() - t0, 2))


def _probe_cpu(vocab: int, keep: tuple[bool, str | None] | None = None) -> tuple[int, bool, str | None, float]:
    probe_b, probe_t = 32, 64
    threads, mkldnn, amp, dt = tune_cpu(vocab, probe_b, probe_t, keep)
    return threads, mkldnn, amp, step_flops(PROBE_HIDDEN, PROBE_HIDDEN, 1, vocab) * probe_b * probe_t / dt


def choose(flops: float, budget_s: float, train_tokens: int, vocab: int, cpu: bool = True) -> Plan:
    """The size (and batch, window, learning rate, dropout) that learns most in `budget_s` at `flops`."""
    batch, seq = (32, 32) if cpu else (128, 256)
    train_s = max(budget_s * TRAIN_SHARE, 1.0)
    best = None
    for layers in (1, 2, 3):
        for h in HIDDEN_SIZES:
            rate = flops / step_flops(h, h, layers, vocab)
            tokens = rate * train_s
            n = params(h, layers, vocab)
            # enough passes over the data for the size: ~2 tokens seen per parameter, at least half an epoch
            # (60 s measured 1x384 best at 2.2M tokens; a deeper stack needs more: 2x256 lost to 1x256 by 0.07)
            fits = tokens >= 1.5 * n * layers and tokens >= min(train_tokens, 2_000_000) * 0.5
            if fits and (best is None or n > best[0]):
                best = (n, h, layers, rate)
    if best is None:
        best = (0, HIDDEN_SIZES[0], 1, flops / step_flops(HIDDEN_SIZES[0], HIDDEN_SIZES[0], 1, vocab))
    _, h, layers, rate = best
    epochs = rate * train_s / max(train_tokens, 1)
    dropout = 0.0 if epochs < 4 else (0.1 if epochs < 10 else 0.25)  # a few passes do not overfit
    if cpu:  # measured: 1.5e-2 at 256 and 1.2e-2 at 320 beat 6e-3 and 1e-2 (clipping keeps it stable)
        lr = min(1.5e-2, 1.5e-2 * 256 / h)
    else:
        lr = 3e-3 if h <= 384 else 2e-3
    return Plan(h, h, layers, batch, seq, lr, dropout, est_tokens_per_s=rate)


def reprobe(first: Plan, left_s: float, train_tokens: int, vocab: int, keep: tuple[bool, str | None],
            probe=None) -> Plan:
    """Time the CPU probe again, at the thread counts only (`keep`: the backend in use). The plan returned
    has the thread count measured fastest now, and the size for `left_s` seconds at the faster of the two
    measurements: load only ever slows a machine down, so the faster figure is the closer one to what
    the rest of the run will see once the load has gone."""
    t0 = time.perf_counter()
    threads, mkldnn, amp, flops = (probe or _probe_cpu)(vocab, keep)
    p = choose(max(flops, first.probe_flops), left_s, train_tokens, vocab)
    return replace(p, threads=threads, mkldnn=mkldnn, amp=amp, probe_flops=flops,
                   probe_s=round(time.perf_counter() - t0, 2))


def busy_seconds() -> float | None:
    """CPU seconds the cores this process may use have spent busy since boot (Linux /proc/stat; None
    elsewhere)."""
    mine = {f"cpu{i}" for i in os.sched_getaffinity(0)} if hasattr(os, "sched_getaffinity") else set()
    busy = 0
    try:
        with open("/proc/stat", encoding="ascii") as f:
            for line in f:
                v = line.split()
                if v and v[0] in mine:  # cpuN user nice system idle iowait irq softirq steal
                    busy += sum(int(x) for x in v[1:9]) - int(v[4]) - int(v[5])
    except (OSError, ValueError, IndexError):
        return None
    return busy / os.sysconf("SC_CLK_TCK") if mine else None


class Load:
    """How many cores other processes kept busy since this was made (Linux; None elsewhere)."""

    def __init__(self):
        self.start = (busy_seconds(), _own_cpu(), time.monotonic())

    def others(self) -> float | None:
        (b0, own0, t0), b, t = self.start, busy_seconds(), time.monotonic()
        if b is None or b0 is None or t - t0 < 0.05:
            return None
        return max(0.0, (b - b0 - (_own_cpu() - own0)) / (t - t0))


class Watch:
    """When a budgeted run on the CPU should time the probe again (`why`): once at the end of its
    calibration, the "second look"; then when the step time has moved by more than MOVED from what it
    was after the last probe, or when it uses fewer threads than cores and other processes have left at
    least one core idle. At most MAX probes, GAP of the budget apart, none in the last fifth, and all of
    them within COST of the budget (a probe runs inside the budget: ~0.2 s on an idle 2-core machine, but
    seconds on a busy one; the first is expected to cost a third of the full probe at the start)."""

    MOVED, MAX, GAP, LAST, COST = 1.3, 4, 0.1, 0.8, 0.05

    def __init__(self, budget_s: float, threads_free: bool, first_probe_s: float = 0.0):
        self.budget_s, self.threads_free = budget_s, threads_free
        self.ref: float | None = None  # the step time after the last probe
        self.last_at, self.log = 0.0, []
        self.spent, self.expect = 0.0, first_probe_s / 3
        self._load: Load | None = None  # since the last look: what the other processes used

    def why(self, elapsed: float, step_time: float, threads: int, window_from: float = math.inf) -> str | None:
        """A reason to time the probe now, or None. `step_time`: the pace over the window, whose oldest
        step ended at `window_from` (seconds into the run, as `elapsed`)."""
        if self.spent + self.expect > self.COST * self.budget_s:
            return None
        if not self.log:
            return "second look"
        if self.ref is None:  # the pace after the last probe, once the window holds only steps after it
            if window_from < self.last_at:
                return None
            self.ref = step_time
        others, self._load = (self._load.others() if self._load else None), Load()
        if len(self.log) >= self.MAX or elapsed > self.LAST * self.budget_s or \
                elapsed - self.last_at < self.GAP * self.budget_s:
            return None
        moved = self.ref / step_time
        if max(moved, 1 / moved) > self.MOVED:
            return f"step time moved {self.ref * 1e3:.1f} -> {step_time * 1e3:.1f} ms"
        from ..device import cores

        if self.threads_free and others is not None and cores() - threads - others >= 0.7:
            return f"a core came free (others used {others:.1f} of {cores()})"
        return None

    def done(self, why: str, elapsed: float, p: Plan, size: str) -> None:
        self.log.append({"at_s": round(elapsed, 1), "why": why, "threads": p.threads, "mkldnn": p.mkldnn,
                         "amp": p.amp, "probe_s": p.probe_s, "probe_gflops": round(p.probe_flops / 1e9, 2),
                         "size": size})
        self.ref, self.last_at, self._load = None, elapsed, None
        self.spent, self.expect = self.spent + p.probe_s, p.probe_s


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system
