"""Quality at a training budget (issue section 1): `ghostwrite train` with only `--max-time`, then
`ghostwrite eval` on the validation split (the last 10% of the characters), in nats and bits per char.

    .venv/bin/python bench/quality.py           # 75 s: tinyshakespeare char/word/sp, xiyouji char/sp
    .venv/bin/python bench/quality.py --long    # adds tinyshakespeare char at 600 s
    .venv/bin/python bench/quality.py --only tinyshakespeare:char:75 --repeat 3
    .venv/bin/python bench/quality.py --baseline --long      # issue 14: ratios to a plain nn.LSTM, 75 s and 600 s
    .venv/bin/python bench/quality.py --baseline --only tinyshakespeare:char:20 --baseline-configs 1 --out smoke

Each run uses a fresh data directory. The whole `train` process (start-up, tokenizer, training, final
evaluation, publishing) is timed from outside and must end within the budget plus 15 s. Writes
bench/results/quality.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, RESULTS, corpus, load, machine, median, table, write_results

CASES = [("tinyshakespeare", "char", 75), ("tinyshakespeare", "word", 75), ("tinyshakespeare", "sp", 75),
         ("xiyouji", "char", 75), ("xiyouji", "sp", 75), ("austen", "char", 75)]
LONG = [("tinyshakespeare", "char", 600), ("austen", "char", 600), ("xiyouji", "char", 600)]
# corpora made of several files (joined with a newline, each loaded and normalised as `train` loads one)
JOINED = {"austen": ["authors/austen-emma.txt", "authors/austen-sense.txt", "austen_pride_and_prejudice.txt"]}
# issue 14: the product's nats/char as a ratio to a plain nn.LSTM trained for the same budget in the same run
RATIO_TARGETS = {75: 0.88, 600: 0.92}
TARGETS = {("tinyshakespeare", "char", 75): 1.50, ("tinyshakespeare", "char", 600): 1.38}  # nats/char
REFERENCE = {("tinyshakespeare", "char", 75): 1.59, ("tinyshakespeare", "char", 600): 1.45}  # issue: plain LSTM


def gw(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, cwd=REPO, capture_output=True, text=True)


def corpus_path(name: str, folder: str) -> Path:
    """The corpus file to train on: a shared corpus, or the JOINED files written into `folder`."""
    if name not in JOINED:
        return corpus(f"{name}.txt")
    from generator.corpora.corpus import load_corpus

    path = Path(folder) / f"{name}.txt"
    path.write_text("\n".join(load_corpus(corpus(p)).text for p in JOINED[name]), encoding="utf-8")
    return path


def baseline(name: str, budget: int, threads: int | None, configs: int) -> dict:
    """bench/baseline_lstm.py on the same corpus and budget (its best of `configs` configurations)."""
    files = ",".join(str(corpus(p)) for p in JOINED.get(name, [f"{name}.txt"]))
    args = [sys.executable, str(REPO / "bench" / "baseline_lstm.py"), "--corpus", files, "--max-time", str(budget),
            "--configs", str(configs)] + (["--threads", str(threads)] if threads else [])
    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-800:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_case(name: str, tokenizer: str, budget: int) -> dict:
    home = tempfile.mkdtemp(prefix="gw-quality-")
    path = corpus_path(name, home)
    env = {**os.environ, "GHOSTWRITE_HOME": home}
    env.pop("GHOSTWRITE_THREADS", None)
    try:
        load_before = load()
        args = ["train", str(path), "--max-time", str(budget), "--json", "--quiet"]
        if tokenizer != "char":
            args[2:2] = ["--tokenizer", tokenizer]
        t0 = time.perf_counter()
        r = gw(*args, env=env)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            return {"corpus": name, "tokenizer": tokenizer, "budget_s": budget, "error": r.stderr.strip()[-800:]}
        card = json.loads(r.stdout.strip().splitlines()[-1])
        t1 = time.perf_counter()
        e = gw("eval", card["name"], "--json", env=env)
        eval_s = time.perf_counter() - t1
        if e.returncode != 0:
            return {"corpus": name, "tokenizer": tokenizer, "budget_s": budget, "error": e.stderr.strip()[-800:]}
        ev = json.loads(e.stdout.strip().splitlines()[-1])
        tr = card.get("train", {})
        tokens = card["steps"] * tr.get("batch_size", 0) * tr.get("seq_len", 0)
        m = card["model"]
        row = {
            "corpus": name, "tokenizer": tokenizer, "budget_s": budget,
            "nats_per_char": round(ev["nats_per_char"], 4), "bits_per_char": round(ev["bits_per_char"], 4),
            "card_val_bpc": card["val_bpc"], "train_wall_s": round(wall, 1), "within_budget": wall <= budget + 15,
            "eval_s": round(eval_s, 1), "model": f"{m['num_layers']}x{m['hidden_size']}", "parameters": card["parameters"],
            "vocab": card["tokenizer"]["vocab_size"], "steps": card["steps"], "batch": tr.get("batch_size"),
            "seq_len": tr.get("seq_len"), "lr": tr.get("lr"), "threads": tr.get("threads"), "mkldnn": tr.get("mkldnn"),
            "tokens_seen": tokens, "training_seconds": card["training_seconds"],
            "tokens_per_s": round(tokens / max(card["training_seconds"], 1e-9)),
            "int8_ok": card.get("int8_ok"), "int8_delta_bpc": card.get("eval", {}).get("int8_delta_bpc"),
            "load_before": load_before[0], "load_after": load()[0],
        }
        key = (name, tokenizer, budget)
        if key in TARGETS:
            row["target_nats"] = TARGETS[key]
            row["reference_plain_lstm_nats"] = REFERENCE[key]
            row["meets_target"] = row["nats_per_char"] <= TARGETS[key]
        return row
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--long", action="store_true", help="also the 600 s tinyshakespeare char run")
    ap.add_argument("--only", action="append", help="CORPUS:TOKENIZER:BUDGET (repeatable)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case (the table shows the median)")
    ap.add_argument("--baseline", action="store_true",
                    help="also train the plain nn.LSTM baseline (bench/baseline_lstm.py) for each char case, "
                         "same budget, same run, with the product's thread count, and report the ratio")
    ap.add_argument("--baseline-configs", type=int, default=3, help="baseline configurations tried (each a budget)")
    ap.add_argument("--max-time", type=int, help="one budget for every case (e.g. 20 for a smoke run)")
    ap.add_argument("--out", default="quality", help="results file name in bench/results (default quality)")
    a = ap.parse_args()
    cases = CASES + (LONG if a.long else [])
    if a.only:
        cases = [(c, t, int(b)) for c, t, b in (s.split(":") for s in a.only)]
    if a.max_time:
        cases = list(dict.fromkeys((c, t, a.max_time) for c, t, _ in cases))
    info = machine()
    print(json.dumps(info), flush=True)
    rows, runs = [], []
    for name, tok, budget in cases:
        done = []
        for _ in range(a.repeat):
            r = run_case(name, tok, budget)
            print(json.dumps(r), flush=True)
            done.append(r)
        runs.extend(done)
        ok = [r for r in done if "error" not in r]
        if not ok:
            rows.append(done[-1])
            continue
        best = sorted(ok, key=lambda r: r["nats_per_char"])[len(ok) // 2]  # the median run
        row = {**best, "runs": len(ok), "nats_median": round(median([r["nats_per_char"] for r in ok]), 4),
               "train_wall_max_s": max(r["train_wall_s"] for r in ok)}
        if a.baseline and tok == "char":
            b = baseline(name, budget, best.get("threads"), a.baseline_configs)
            print(json.dumps(b), flush=True)
            if "error" in b:
                row["baseline_error"] = b["error"]
            else:
                row["baseline_nats"] = b["best"]["nats_per_char"]
                row["baseline_config"] = b["best"]["config"]
                row["baseline_runs"] = b["runs"]
                row["ratio_to_baseline"] = round(row["nats_median"] / b["best"]["nats_per_char"], 3)
                target = RATIO_TARGETS.get(budget, RATIO_TARGETS[75] if budget < 600 else RATIO_TARGETS[600])
                row["target_ratio"] = target
                row["meets_ratio"] = row["ratio_to_baseline"] <= target
        rows.append(row)
    table("Validation after a training budget (ghostwrite train --max-time B; ghostwrite eval)", rows,
          ["corpus", "tokenizer", "budget_s", "nats_per_char", "bits_per_char", "target_nats", "baseline_nats",
           "ratio_to_baseline", "target_ratio", "train_wall_s", "model", "steps", "tokens_per_s", "threads",
           "load_before"])
    info["load_at_end"] = load()
    out = {"machine": info, "results": rows, "runs": runs}
    previous = RESULTS / f"{a.out}.json"
    if previous.exists():  # keep the rows of cases not run this time (e.g. the --long run)
        old = json.loads(previous.read_text(encoding="utf-8"))
        ran = {(r["corpus"], r["tokenizer"], r["budget_s"]) for r in rows}
        kept = [r for r in old.get("results", []) if (r["corpus"], r["tokenizer"], r["budget_s"]) not in ran]
        if kept:
            out["results"] = rows + kept
            out["earlier_runs"] = {"machine": old.get("machine"), "results": kept}
    write_results(a.out, out)


if __name__ == "__main__":
    main()
