"""Reading ghostwrite's environment variables: junk in one is one line of error, never a traceback.

Every variable the README documents is read through these helpers where it is used; a value that is
not what the variable takes raises GhostwriteError naming the variable, what it takes and what it got
(the CLI prints that line and exits 2). An empty or unset variable means the default.
"""

from __future__ import annotations

import math
import os

from .errors import GhostwriteError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FALSE = ("0", "false", "no", "off")
TRUE = ("1", "true", "yes", "on")


def _shown(raw: str) -> str:
    return repr(raw) if len(raw) <= 40 else repr(raw[:37]) + "..."


def raw(name: str, environ=None) -> str | None:
    """The variable's value, stripped; None when unset or blank."""
    value = (os.environ if environ is None else environ).get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def integer(name: str, default: int, lo: int, hi: int, environ=None) -> int:
    """A whole number in [lo, hi]."""
    value = raw(name, environ)
    if value is None:
        return default
    try:
        n = int(value, 10)
    except ValueError:
        n = None
    if n is None or not lo <= n <= hi:
        raise GhostwriteError(f"{name} must be a whole number from {lo} to {hi:,}, got {_shown(value)}")
    return n


def number(name: str, default: float, lo: float, hi: float, environ=None) -> float:
    """A finite number in [lo, hi]."""
    value = raw(name, environ)
    if value is None:
        return default
    try:
        x = float(value)
    except ValueError:
        x = math.nan
    if not (math.isfinite(x) and lo <= x <= hi):
        raise GhostwriteError(f"{name} must be a number from {lo:g} to {hi:g}, got {_shown(value)}")
    return x


def flag(name: str, default: bool, environ=None) -> bool:
    """On/off: 1/true/yes/on or 0/false/no/off (any case)."""
    value = raw(name, environ)
    if value is None:
        return default
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise GhostwriteError(f"{name} must be 1 or 0 (on or off), got {_shown(value)}")


def log_level(name: str = "GHOSTWRITE_LOG_LEVEL", default: str = "WARNING", environ=None) -> str:
    value = raw(name, environ)
    if value is None:
        return default
    if value.upper() not in LOG_LEVELS:
        raise GhostwriteError(f"{name} must be one of {', '.join(LOG_LEVELS[:4])}, got {_shown(value)}")
    return value.upper()


# ---- the variables (README "Settings (environment)") --------------------------------------------------
MAX_THREADS = 1024


def threads() -> int:
    """GHOSTWRITE_THREADS: CPU threads for torch; 0 or unset: chosen (generator/device.py)."""
    return integer("GHOSTWRITE_THREADS", 0, 0, MAX_THREADS)


def engine_threads() -> int:
    """GHOSTWRITE_ENGINE_THREADS: intra-op threads of the batching engine's thread (default 1)."""
    return integer("GHOSTWRITE_ENGINE_THREADS", 1, 1, MAX_THREADS)


def torchscript() -> bool:
    """GHOSTWRITE_TORCHSCRIPT: 0 turns the compiled many-tokens-per-call loop off."""
    return flag("GHOSTWRITE_TORCHSCRIPT", True)


def cpu_bf16() -> bool:
    """GHOSTWRITE_CPU_BF16: 0 keeps CPU training in fp32."""
    return flag("GHOSTWRITE_CPU_BF16", True)


def check() -> None:
    """Read every variable above once: the CLI calls this first and loading a model calls it, so junk
    in any of them is reported before anything is done or generated."""
    threads()
    engine_threads()
    torchscript()
    cpu_bf16()
