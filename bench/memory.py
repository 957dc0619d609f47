"""Memory: corpora larger than RAM (issue section 3) and the scaling table (section 4).

    .venv/bin/python bench/memory.py                  # 2 GB corpus, char and sp, 60 s each; 1/10/100 MB scaling
    .venv/bin/python bench/memory.py --size-mb 200    # a smaller big corpus (smoke test)
    .venv/bin/python bench/memory.py --skip-big       # only the scaling table

A synthetic corpus is made in a temporary folder from shuffled paragraphs of ../shared/corpora (English
plays and novels, Wikipedia, and Chinese: several thousand distinct characters), repeated to the size
asked for, and deleted afterwards. `ghostwrite train CORPUS --tokenizer T --max-time 60` then prepares it
(streaming from disk: never read whole) and trains for 60 s; the peak RSS of that process (its own
`ru_maxrss`, from wait4) must stay under 1.5 GB. Tokenization throughput is the corpus size divided by
the time `prepare` took (count + checksum, vocabulary, encoding), from the run's metadata.
Writes bench/results/memory.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, RESULTS, SHARED, load, machine, table, write_results

SOURCES = ["tinyshakespeare.txt", "austen_pride_and_prejudice.txt", "xiyouji.txt", "wikitext-2/valid.txt",
           "wikitext-2/test.txt"]


def paragraphs() -> list[str]:
    out = []
    for name in SOURCES:
        p = SHARED / name
        if p.exists():
            text = p.read_text(encoding="utf-8")
            out += [para.strip("\n") + "\n\n" for para in text.split("\n\n") if para.strip()]
    if not out:
        sys.exit(f"no corpora found in {SHARED}")
    return out


def make_corpus(path: Path, size_bytes: int, seed: int = 0) -> int:
    """Shuffled paragraphs, reshuffled on every pass, until the file holds `size_bytes` bytes."""
    paras = [p.encode("utf-8") for p in paragraphs()]
    rng = random.Random(seed)
    written = 0
    with open(path, "wb") as f:
        while written < size_bytes:
            rng.shuffle(paras)
            buf = []
            for p in paras:
                buf.append(p)
                written += len(p)
                if written >= size_bytes:
                    break
            f.write(b"".join(buf))
    return written


def run_measured(cmd: list[str], env: dict) -> tuple[int, float, int, str, str]:
    """(exit code, wall seconds, peak RSS bytes of the process, stdout, stderr)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return p.returncode, wall, usage.ru_maxrss * 1024, out.read().decode(), err.read().decode()


def train_run(corpus: Path, tokenizer: str, seconds: int, home: Path, name: str) -> dict:
    env = {**os.environ, "GHOSTWRITE_HOME": str(home)}
    cmd = [sys.executable, "-m", "bot.cli", "train", str(corpus), "--name", name, "--tokenizer", tokenizer,
           "--max-time", str(seconds), "--json", "--quiet"]
    rc, wall, rss, out, err = run_measured(cmd, env)
    size = corpus.stat().st_size
    row = {"tokenizer": tokenizer, "corpus_mb": round(size / 1e6, 1), "train_budget_s": seconds, "wall_s": round(wall, 1),
           "peak_rss_mb": round(rss / 1e6), "load_after": load()[0]}
    if rc != 0:
        row["error"] = err.strip()[-800:]
        return row
    card = json.loads(out.strip().splitlines()[-1])
    meta = json.loads((home / "runs" / name / "run.json").read_text(encoding="utf-8"))
    tr = card["train"]
    tokens = card["steps"] * tr["batch_size"] * tr["seq_len"]
    row.update(streamed=bool(meta.get("streamed")), vocab=card["tokenizer"]["vocab_size"],
               train_tokens=meta["train_tokens"], model=f"{card['model']['num_layers']}x{card['model']['hidden_size']}",
               steps=card["steps"], training_seconds=card["training_seconds"],
               train_tokens_per_s=round(tokens / max(card["training_seconds"], 1e-9)), val_bpc=card["val_bpc"])
    if meta.get("prepare_seconds"):  # count + checksum, vocabulary, encoding: the whole preparation
        row["prepare_s"] = meta["prepare_seconds"]
        row["tokenize_mb_s"] = round(size / 1e6 / meta["prepare_seconds"], 1)
    if meta.get("encode_seconds"):  # the encoding pass alone
        row["encode_mb_s"] = round(size / 1e6 / max(meta["encode_seconds"], 1e-9), 1)
    shutil.rmtree(home / "runs" / name, ignore_errors=True)  # the token files: gigabytes
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=2000, help="size of the big corpus (MB)")
    ap.add_argument("--seconds", type=int, default=60, help="training budget on the big corpus")
    ap.add_argument("--tokenizers", default="char,sp")
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--scaling-seconds", type=int, default=30)
    ap.add_argument("--tmp", help="where the corpus and runs go (default: the system temp dir)")
    a = ap.parse_args()
    info = machine()
    print(json.dumps(info), flush=True)
    work = Path(tempfile.mkdtemp(prefix="gw-memory-", dir=a.tmp))
    out = {"machine": info, "limit_mb": 1500, "big": [], "scaling": []}
    try:
        home = work / "home"
        home.mkdir()
        if not a.skip_big:
            big = work / "big-corpus.txt"
            t0 = time.perf_counter()
            n = make_corpus(big, a.size_mb * 1_000_000)
            print(f"made a {n / 1e6:,.0f} MB corpus in {time.perf_counter() - t0:.0f} s", flush=True)
            for tok in a.tokenizers.split(","):
                row = train_run(big, tok, a.seconds, home, f"big-{tok}")
                row["under_limit"] = row.get("peak_rss_mb", 1e9) < out["limit_mb"]
                out["big"].append(row)
                print(row, flush=True)
            big.unlink()
            table(f"{a.size_mb:,} MB corpus: tokenize (streaming) and train {a.seconds} s", out["big"],
                  ["tokenizer", "corpus_mb", "peak_rss_mb", "prepare_s", "tokenize_mb_s", "encode_mb_s", "vocab",
                   "train_tokens", "train_tokens_per_s", "wall_s"])
        if not a.skip_scaling:
            for mb in (1, 10, 100):
                c = work / f"corpus-{mb}mb.txt"
                make_corpus(c, mb * 1_000_000, seed=mb)
                row = train_run(c, "char", a.scaling_seconds, home, f"scale-{mb}")
                out["scaling"].append(row)
                print(row, flush=True)
                c.unlink()
            table(f"Scaling: char model, {a.scaling_seconds} s budget", out["scaling"],
                  ["corpus_mb", "streamed", "peak_rss_mb", "train_tokens", "model", "train_tokens_per_s", "prepare_s",
                   "wall_s"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["machine"]["load_at_end"] = load()
    previous = RESULTS / "memory.json"
    if previous.exists():  # keep what this run skipped (e.g. the scaling table) from the last run
        old = json.loads(previous.read_text(encoding="utf-8"))
        kept = {k: old[k] for k in ("big", "scaling") if not out[k] and old.get(k)}
        if kept:
            out.update(kept)
            out["kept_from"] = {"machine": old.get("machine"), "sections": sorted(kept)}
    write_results("memory", out)


if __name__ == "__main__":
    main()
