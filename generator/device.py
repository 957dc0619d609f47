"""Device choice and CPU settings shared by training and inference."""

from __future__ import annotations

import functools
import os

import torch

from . import env
from .errors import GhostwriteError


def pick(device: str = "auto") -> torch.device:
    device = (device or "auto").lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise GhostwriteError("--device cuda asked for, but no CUDA GPU is available (try --device auto)")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise GhostwriteError("--device mps asked for, but Apple's MPS backend is not available")
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise GhostwriteError(f"unknown device {device!r}: use auto, cpu, cuda or mps")
    return torch.device(device)


_forced_threads = False


def configure_cpu(threads: int | None = None, mkldnn: bool | None = None) -> int:
    """Set the intra-op threads and the LSTM backend for this process.

    Threads: `threads`, else GHOSTWRITE_THREADS, else every core we are allowed when the machine is
    otherwise idle and one thread when other processes keep its cores busy. The small per-time-step
    products of an LSTM run one OpenMP region each, and a team that has to wait for a core someone else
    holds stalls every region: measured here on 2 busy cores, 2 threads trained 5-20 times slower than
    1 (bench/NOTES.md). `autosize.plan` then times both for training and keeps the faster.

    mkldnn (oneDNN): off by default, because its kernels measured several times slower for one-row
    LSTM inference; training may switch it on where it measures faster (`autosize.plan`)."""
    global _forced_threads
    asked = env.threads()  # junk in it is one line of error (generator/env.py)
    env.check()  # and in the other variables generation reads later, before anything is generated
    _forced_threads = bool(threads or asked)
    n = threads or asked or default_threads()
    torch.set_num_threads(max(1, n))
    torch.backends.mkldnn.enabled = bool(mkldnn) if mkldnn is not None else os.environ.get("GHOSTWRITE_MKLDNN") == "1"
    return n


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return frozenset(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return frozenset()


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated, slowly.
    GHOSTWRITE_CPU_BF16=0 rules bf16 out (fp32 training everywhere)."""
    if not env.cpu_bf16() or not torch.backends.mkldnn.is_available():
        return False
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def threads_forced() -> bool:
    """Whether the thread count was asked for (argument or GHOSTWRITE_THREADS) rather than chosen."""
    return _forced_threads


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_threads() -> int:
    n = cores()
    try:
        busy = os.getloadavg()[0]
    except OSError:
        return n
    # the load average counts runnable processes: what is left of n cores is what we may use
    return n if busy <= 0.5 else max(1, min(n, int(n - busy + 0.5)))
