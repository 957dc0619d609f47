"""A budget is a budget (issue 9): `ghostwrite train CORPUS --max-time B` twice in one session, on a quiet
machine and with a CPU-bound competitor pinned to one core for the first C seconds of the run.

    .venv/bin/python bench/budget.py                               # shakespeare, 120 s, competitor 30 s
    .venv/bin/python bench/budget.py --corpus ../shared/corpora/tinyshakespeare.txt --max-time 20 --compete 6

The corpus (a recipe name or a file) is prepared once in bench/.cache/budget (a recipe is fetched there
first), so both runs start from the same token files. Each run reports the seconds it trained (the loop;
the budget starts once the corpus is prepared), its steps, the model the auto-sizer chose, the card's
validation figure and, unless --no-eval, `ghostwrite eval` on the whole validation split; the card's
step-time figures and re-probes show how the run followed the machine. Writes
bench/results/budget-<B>s.json and prints a table. Done when (issue 9, at 120 s): the loaded run trains
for >= 105 s and its nats/char are within 0.05 of the quiet run's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, load, machine, table, use_home, write_results

SPIN = ("import os, time\nos.sched_setaffinity(0, {{{core}}})\nend = time.monotonic() + {s}\n"
        "while time.monotonic() < end:\n    pass\n")


def gw(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, cwd=REPO, capture_output=True, text=True,
                          check=False)


def competitor(seconds: float, core: int) -> subprocess.Popen:
    """A CPU-bound process pinned to `core` that spins for `seconds` and exits by itself."""
    return subprocess.Popen([sys.executable, "-c", SPIN.format(s=seconds, core=core)])


def run(corpus: str, name: str, budget: float, env: dict, compete: float, core: int, evaluate: bool) -> dict:
    load_before = load()[0]
    rival = competitor(compete, core) if compete > 0 else None
    t0 = time.perf_counter()
    try:
        r = gw("train", corpus, "--name", name, "--max-time", str(budget), "--json", "--quiet", env=env)
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()
    wall = time.perf_counter() - t0
    row = {"run": "loaded" if compete > 0 else "quiet", "competitor_s": compete, "budget_s": budget,
           "load_before": load_before}
    if r.returncode != 0:
        return {**row, "error": r.stderr.strip()[-800:]}
    card = json.loads(r.stdout.strip().splitlines()[-1])
    t, m, tr = card.get("timing") or {}, card["model"], card.get("train", {})
    steps = t.get("steps") or {}
    reserve = steps.get("eval_reserve_s") or 0.0
    row.update({
        "trained_s": t.get("loop_s"), "budget_less_eval_s": round(budget - reserve, 1), "setup_s": t.get("setup_s"),
        "final_eval_s": t.get("final_eval_s"), "training_seconds": card["training_seconds"], "wall_s": round(wall, 1),
        "steps": card["steps"], "model": f"{m['num_layers']}x{m['hidden_size']}", "parameters": card["parameters"],
        "threads": tr.get("threads"), "amp": tr.get("amp"), "card_nats_per_char": card["val_nats_per_char"],
        "step_ms_start": steps.get("start_ms"), "step_ms_median": steps.get("median_ms"),
        "step_ms_end": steps.get("end_ms"), "schedule_moves": steps.get("schedule_moves"),
        "first_total_steps": steps.get("first_total_steps"), "step_ms_trace": steps.get("trace"),
        "probe": t.get("probe"), "reprobes": t.get("reprobes"), "load_after": load()[0],
    })
    if evaluate:
        e = gw("eval", name, "--json", env=env)
        if e.returncode == 0:
            row["nats_per_char"] = round(json.loads(e.stdout.strip().splitlines()[-1])["nats_per_char"], 4)
        else:
            row["eval_error"] = e.stderr.strip()[-400:]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="shakespeare", help="a recipe name or a text file (default shakespeare)")
    ap.add_argument("--max-time", type=float, default=120.0)
    ap.add_argument("--compete", type=float, default=30.0, help="seconds the competitor spins (from the start)")
    ap.add_argument("--core", type=int, default=0, help="the core the competitor is pinned to")
    ap.add_argument("--no-eval", action="store_true", help="skip `ghostwrite eval` on the whole validation split")
    ap.add_argument("--home", help="data directory (default bench/.cache/budget)")
    a = ap.parse_args()
    home = use_home(a.home, "budget")
    env = {**os.environ, "GHOSTWRITE_HOME": str(home)}
    env.pop("GHOSTWRITE_THREADS", None)  # the auto-sizer chooses, as for a user
    corpus = a.corpus
    if Path(corpus).is_file():
        corpus = str(Path(corpus).resolve())
    else:  # a recipe: fetched once, before anything is timed
        g = gw("corpus", "get", corpus, env=env)
        if g.returncode != 0:
            sys.exit(f"corpus get {corpus}: {g.stderr.strip()[-400:]}")
    info = machine()
    print(json.dumps(info), flush=True)
    rows = []
    for compete in (0.0, a.compete):
        name = f"budget-{'loaded' if compete else 'quiet'}"
        gw("models", "rm", name, "--yes", env=env)  # a fresh model each session (fails harmlessly when absent)
        r = run(corpus, name, a.max_time, env, compete, a.core, not a.no_eval)
        print(json.dumps(r), flush=True)
        rows.append(r)
    quiet, loaded = rows
    key = "nats_per_char" if "nats_per_char" in quiet and "nats_per_char" in loaded else "card_nats_per_char"
    verdict = {}
    if "error" not in quiet and "error" not in loaded:
        verdict = {"figure": key, "delta_nats_per_char": round(loaded[key] - quiet[key], 4),
                   "within_0.05": loaded[key] - quiet[key] <= 0.05,
                   "loaded_trained_share": round(loaded["trained_s"] / a.max_time, 3),
                   "trains_105_of_120": loaded["trained_s"] >= a.max_time * 105 / 120}
    table(f"ghostwrite train {a.corpus} --max-time {a.max_time:g}: quiet, and a competitor on core {a.core} "
          f"for {a.compete:g} s", rows,
          ["run", "trained_s", "budget_less_eval_s", "training_seconds", "steps", "model", "parameters", "threads",
           "step_ms_start", "step_ms_median", "step_ms_end", "schedule_moves", key, "load_before"])
    print(json.dumps(verdict), flush=True)
    info["load_at_end"] = load()
    write_results(f"budget-{a.max_time:g}s", {"machine": info, "corpus": a.corpus, "compete_s": a.compete,
                                              "core": a.core, "verdict": verdict, "results": rows})


if __name__ == "__main__":
    main()
