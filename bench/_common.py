"""Helpers shared by the bench scripts: machine description, percentiles, tables, JSON results, and a
data directory for the models the benchmarks train (bench/.cache/home unless --home is given)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
SHARED = REPO.parent / "shared" / "corpora"
sys.path.insert(0, str(REPO))


def corpus(name: str) -> Path:
    p = SHARED / name
    if not p.exists():
        sys.exit(f"missing corpus {p} (the shared corpora live next to the repository)")
    return p


def use_home(path: str | None, default: str = "home") -> Path:
    home = Path(path) if path else BENCH / ".cache" / default
    home.mkdir(parents=True, exist_ok=True)
    os.environ["GHOSTWRITE_HOME"] = str(home)
    return home


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        tv = torch.__version__
    except ImportError:
        tv = None
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "memory_gib": mem, "python": platform.python_version(),
            "torch": tv, "platform": platform.platform(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "load_at_start": load(), "git": git_rev()}


def git_rev() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def pct(values, p: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


def table(title: str, rows: list[dict], cols: list[str]) -> str:
    def fmt(x):
        if isinstance(x, float):
            return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
        if isinstance(x, int):
            return f"{x:,}"
        return "" if x is None else str(x)

    cells = [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(cols)]
    lines = [f"\n{title}", "| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(x.rjust(w) for x, w in zip(row, widths)) + " |" for row in cells]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def write_results(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    print(f"\nwrote {path.relative_to(REPO)}")
    return path


def timer():
    return time.perf_counter()
