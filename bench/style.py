"""Style fidelity (issue 11): is the judge any good, and how do small models score?

    .venv/bin/python bench/style.py --judges                      # judge accuracy only (~2 min)
    .venv/bin/python bench/style.py --models austen:char:75,doyle:sp:75 [--sweep temperature=0.5,0.8,1.1]

1. Judge accuracy on real held-out passages (the last 10% of each corpus; each judge is built from its
   corpus's first 90%) of 100, 200, 400 and 800 characters, on the English author panel of
   ../shared/corpora/authors (Austen = emma + sense + pride_and_prejudice, Chesterton = ball + brown, the
   others by file, and tinyshakespeare) and on the Chinese one (三国演义, 水浒传, 西游记). Up to 50 passages
   per corpus and length, evenly spread and not overlapping. Also the time to build each judge and to
   score a 400-character passage.
2. A book the judge never saw: Austen's judge built from two of her books, tested on 50 passages of 400
   characters spread over the third (each book in turn); the same for Chesterton's two books; the other
   judges as in 1.
3. The style report (`ghostwrite eval NAME --style --json`, 50 prompts × 400 characters, judged among the
   whole English panel) of models trained with `ghostwrite train CORPUS --tokenizer T --max-time B`, one
   report per value of --sweep (default: temperature 0.5, 0.8 = the default, 1.1). A model the data folder
   already holds is not trained again (--retrain to train it anyway).

Corpora are registered in bench/.cache/style-home (or --home). Writes bench/results/style.json after each
part (a long run's finished parts are kept) and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _common import REPO, corpus, load, machine, table, use_home, write_results

EN = {"austen": ["authors/austen-emma.txt", "authors/austen-sense.txt", "austen_pride_and_prejudice.txt"],
      "chesterton": ["authors/chesterton-ball.txt", "authors/chesterton-brown.txt"],
      "doyle": ["authors/doyle-holmes.txt"], "stoker": ["authors/dracula-stoker.txt"],
      "edgeworth": ["authors/edgeworth-parents.txt"], "melville": ["authors/melville-moby_dick.txt"],
      "twain": ["authors/sawyer-twain.txt"], "shelley": ["authors/shelley-frankenstein.txt"],
      "stevenson": ["authors/stevenson-hyde.txt"], "wilde": ["authors/wilde-dorian.txt"],
      "shakespeare": ["tinyshakespeare.txt"]}
ZH = {"sanguoyanyi": ["zh/sanguoyanyi.txt"], "shuihuzhuan": ["zh/shuihuzhuan.txt"], "xiyouji": ["xiyouji.txt"]}
LENGTHS = (100, 200, 400, 800)
PASSAGES = 50


def read(files: list[str]) -> str:
    from generator.corpora.corpus import join_texts, read_text_file

    return join_texts([read_text_file(corpus(f)) for f in files])


def register(panel: dict[str, list[str]], lang: str) -> None:
    from generator.corpora.corpus import corpus_exists, save_corpus

    for name, files in panel.items():
        if not corpus_exists(name):
            save_corpus(name, read(files), lang=lang, source="bench: " + ", ".join(files), files=files)


def spread(text: str, length: int, n: int = PASSAGES) -> list[str]:
    """Up to n passages of `length` characters, evenly spread over `text`, not overlapping."""
    n = min(n, len(text) // length)
    step = len(text) // max(n, 1)
    return [text[k * step:k * step + length] for k in range(n)]


def accuracy(judges: dict, cases: dict[str, list[str]]) -> tuple[dict, float, list[float]]:
    """Per true author: the share attributed to it; overall share; scoring times (s per passage per judge)."""
    per, times = {}, []
    for author, passages in cases.items():
        right = 0
        for p in passages:
            t = time.perf_counter()
            bpc = {a: j.bits_per_char(p) for a, j in judges.items()}
            times.append((time.perf_counter() - t) / len(judges))
            right += min(bpc, key=bpc.get) == author
        per[author] = right / max(len(passages), 1)
    n = sum(len(v) for v in cases.values())
    return per, sum(per[a] * len(v) for a, v in cases.items()) / n, times


def judge_part(out: dict) -> None:
    from generator.corpora.corpus import load_corpus, split_text
    from generator.style import cache
    from generator.style.judges import build_judge

    for label, panel in (("en", EN), ("zh", ZH)):
        judges, build_s, vals = {}, {}, {}
        for name in panel:
            c = load_corpus(name)
            t = time.perf_counter()
            judges[name] = build_judge(cache.training_split(c))
            build_s[name] = round(time.perf_counter() - t, 2)
            vals[name] = split_text(c.text, 0.1)[1]
        rows = []
        for length in LENGTHS:
            per, acc, times = accuracy(judges, {a: spread(v, length) for a, v in vals.items()})
            rows.append({"panel": label, "authors": len(panel), "chars": length, "accuracy": round(acc, 4),
                         "chance": round(1 / len(panel), 3), "worst": min(per, key=per.get),
                         "worst_accuracy": round(min(per.values()), 3),
                         "ms_per_judge": round(1000 * statistics.median(times), 3), "per_author": per})
        out.setdefault("judges", {})[label] = {"rows": rows, "build_seconds": build_s,
                                               "training_chars": {a: j.meta["characters"] for a, j in judges.items()}}
        table(f"judge accuracy on held-out passages, {label} panel ({len(panel)} authors)", rows,
              ["chars", "accuracy", "chance", "worst", "worst_accuracy", "ms_per_judge"])
        if label == "en":
            unseen_part(out, judges)


def unseen_part(out: dict, judges: dict) -> None:
    from generator.style.judges import build_judge

    rows = []
    for author in ("austen", "chesterton"):
        books = EN[author]
        for held in books:
            seen = [b for b in books if b != held]
            panel = {**judges, author: build_judge(read(seen))}
            per, acc, _ = accuracy(panel, {author: spread(read([held]), 400)})
            rows.append({"author": author, "judge_trained_on": " + ".join(os.path.basename(b) for b in seen),
                         "tested_on": os.path.basename(held), "passages": len(spread(read([held]), 400)),
                         "chars": 400, "accuracy": round(acc, 4), "chance": round(1 / len(panel), 3)})
    out["unseen_book"] = rows
    table("a book the judge never saw (400-character passages, 11 authors)", rows,
          ["author", "judge_trained_on", "tested_on", "passages", "accuracy", "chance"])


def gw(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ))


def model_part(out: dict, specs: list[str], sweep: str, prompts: int, retrain: bool) -> None:
    rows = out.setdefault("models", [])
    for spec in specs:
        name, tok, budget = spec.split(":")
        model = f"{name}-{tok}-{budget}"
        t = time.perf_counter()
        r = gw("models", "show", model)  # trained by an earlier run: only its report is made again
        if r.returncode != 0 or retrain:
            r = gw("train", name, "--tokenizer", tok, "--max-time", budget, "--name", model, "--json", "--quiet")
            if r.returncode != 0:
                print(f"{model}: training failed: {r.stderr.strip()[-300:]}", flush=True)
                continue
            card = json.loads(r.stdout.strip().splitlines()[-1])
            card["wall"] = time.perf_counter() - t
        else:
            card = json.loads(r.stdout)
        wall = card.get("wall") or card.get("training_seconds")
        rows[:] = [x for x in rows if x["model"] != model]
        r = gw("eval", model, "--style", "--prompts", str(prompts), "--length", "400", "--sweep", sweep, "--json")
        if r.returncode != 0:
            print(f"{model}: style report failed: {r.stderr.strip()[-300:]}", flush=True)
            continue
        rep = json.loads(r.stdout)
        for one in rep["reports"]:
            g, real = one["generated"], one["real"]
            rows.append({"model": model, "corpus": name, "tokenizer": tok, "budget_s": int(budget),
                         "train_wall_s": round(wall or 0, 1), "val_bpc": round(card["val_bpc"], 3),
                         "temperature": one["settings"]["temperature"], "accuracy": round(g["accuracy"], 3),
                         "ceiling": round(real["accuracy"], 3),
                         "ratio": None if one["ratio"] is None else round(one["ratio"], 3),
                         "margin": round(g["margin_bits"], 3), "real_margin": round(real["margin_bits"], 3),
                         "own_bpc": round(g["own_judge_bpc"], 3), "real_own_bpc": round(real["own_judge_bpc"], 3),
                         "copied_median": g["longest_copied_median"],
                         "copied_max": g["longest_copied_max"], "share_median": round(g["copied_share_median"], 3),
                         "real_copied_median": real["longest_copied_median"],
                         "best": one["settings"] == rep["best"], "report_s": one["seconds"],
                         "sample": one["samples"][0][:200], "panel": len(one["panel"])})
        out["load_after_models"] = load()
        write_results("style", out)
        table("style reports", rows, ["model", "val_bpc", "temperature", "accuracy", "ceiling", "ratio", "margin",
                                      "real_margin", "copied_median", "copied_max", "share_median", "best"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", help="data folder (default bench/.cache/style-home)")
    ap.add_argument("--judges", action="store_true", help="only parts 1 and 2")
    ap.add_argument("--models", default="austen:char:75,chesterton:char:75,doyle:char:75",
                    help="CORPUS:TOKENIZER:SECONDS,... for part 3")
    ap.add_argument("--sweep", default="temperature=0.5,0.8,1.1")
    ap.add_argument("--prompts", type=int, default=50)
    ap.add_argument("--retrain", action="store_true", help="train the models again even when they exist")
    ap.add_argument("--keep", action="store_true", help="add to bench/results/style.json instead of starting over")
    args = ap.parse_args()
    use_home(args.home, "style-home")
    path = REPO / "bench" / "results" / "style.json"
    out = json.loads(path.read_text()) if args.keep and path.exists() else {"machine": machine()}
    register(EN, "en")
    register(ZH, "zh")
    if args.judges or "judges" not in out:
        judge_part(out)
        write_results("style", out)
    if not args.judges:
        model_part(out, [s for s in args.models.split(",") if s], args.sweep, args.prompts, args.retrain)
    out["load_at_end"] = load()
    write_results("style", out)


if __name__ == "__main__":
    main()
