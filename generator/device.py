"""Device choice and CPU settings shared by training and inference."""

from __future__ import annotations

import os

import torch

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


def configure_cpu(threads: int | None = None) -> int:
    """Use every core we are allowed (or `threads`), and the plain ATen LSTM kernels: on small CPU
    LSTMs oneDNN's (mkldnn) kernels measured several times slower here, for training and sampling."""
    n = threads or int(os.environ.get("GHOSTWRITE_THREADS", 0)) or len(os.sched_getaffinity(0))
    torch.set_num_threads(max(1, n))
    torch.backends.mkldnn.enabled = False
    return n
