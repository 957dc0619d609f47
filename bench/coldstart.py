"""Cold start (issue 14, item 4): `ghostwrite generate MODEL PROMPT --length 200` as a whole process,
against a bare `python -c "import torch"`, measured in pairs in the same run (A then B, repeated), so
that a busy machine slows both sides alike. Reports the medians and the ratio of the medians, and the
median of the per-pair ratios.

    .venv/bin/python bench/coldstart.py                   # 7 pairs, writes bench/results/coldstart.json
    .venv/bin/python bench/coldstart.py --label before    # keeps the other labels' figures in the file
    .venv/bin/python bench/coldstart.py --pairs 3          # a smoke run
    .venv/bin/python bench/coldstart.py --old /tmp/wt      # also an older checkout's generate, same rounds

The model is the benchmark home's `default` (bench/generation.py trains it: --max-time 120), or --model.
Every generation must be stored: the bench counts the rows before and after and fails otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, RESULTS, load, machine, median, use_home, write_results

TORCH = [sys.executable, "-c", "import torch"]


def ghostwrite() -> list[str]:
    exe = Path(sys.executable).with_name("ghostwrite")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bot.cli"]


def timed(cmd: list[str], env: dict, cwd: str | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd or REPO, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return dt


def rows(home: Path) -> int:
    db = home / "ghostwrite.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM generations").fetchone()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", help="data directory (default bench/.cache/home)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--label", default="current", help="name of this set of figures in the results file")
    ap.add_argument("--old", help="a checkout of older code (git worktree): its generate is timed in the same "
                                  "rounds, with its own data directory holding a copy of the model")
    a = ap.parse_args()
    home = use_home(a.home)
    env = dict(os.environ, GHOSTWRITE_HOME=str(home))
    args = ["generate", a.model, "ROMEO:\n", "--length", "200", "--seed", "1"]
    gen = [*ghostwrite(), *args]
    runs: list[tuple[str, list[str], dict, str | None]] = [("torch", TORCH, env, None), ("generate", gen, env, None)]
    if a.old:
        old_home = Path(a.old) / ".coldstart-home"
        if not (old_home / "models" / a.model).exists():
            shutil.copytree(home / "models" / a.model, old_home / "models" / a.model)
        runs.append(("generate_old", [sys.executable, "-m", "bot.cli", *args],
                     dict(os.environ, GHOSTWRITE_HOME=str(old_home), PYTHONPATH=a.old), a.old))
    for _, cmd, e, cwd in runs:  # warm: the store created and migrated, the files in the page cache
        timed(cmd, e, cwd)
    before = rows(home)
    times: dict[str, list[float]] = {name: [] for name, *_ in runs}
    for i in range(a.pairs):
        order = runs if i % 2 == 0 else runs[::-1]  # ABBA: a drifting load hits every command alike
        for name, cmd, e, cwd in order:
            times[name].append(timed(cmd, e, cwd))
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()) +
              f" ({times['generate'][-1] / times['torch'][-1]:.2f}x)", flush=True)
    torch_s, gen_s = times["torch"], times["generate"]
    stored = rows(home) - before
    if stored != a.pairs:
        sys.exit(f"{a.pairs} generations ran but {stored} rows were stored")
    fig = {"machine": machine(), "command": " ".join(["ghostwrite", *gen[len(ghostwrite()):]]), "pairs": a.pairs,
           "import_torch_s": [round(x, 3) for x in torch_s], "generate_s": [round(x, 3) for x in gen_s],
           "import_torch_median_s": round(median(torch_s), 3), "generate_median_s": round(median(gen_s), 3),
           "ratio_of_medians": round(median(gen_s) / median(torch_s), 3),
           "median_pair_ratio": round(median([g / t for g, t in zip(gen_s, torch_s)]), 3),
           "rows_stored": stored, "load_at_end": load(),
           **({"generate_old_s": [round(x, 3) for x in times["generate_old"]],
               "generate_old_median_s": round(median(times["generate_old"]), 3),
               "old_ratio_of_medians": round(median(times["generate_old"]) / median(torch_s), 3),
               "old_code": a.old} if a.old else {}),
           "note": "shared 2-core machine: pairs alternate (ABBA) so load hits both sides; ratios, not seconds"}
    print(json.dumps({k: v for k, v in fig.items() if k != "machine"}, indent=1))
    path = RESULTS / "coldstart.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[a.label] = fig
    data["target"] = "generate <= 1.2x the bare torch import (issue 14, item 4)"
    write_results("coldstart", data)


if __name__ == "__main__":
    main()
