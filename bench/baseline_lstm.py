"""The plain baseline of bench/quality.py (issue 14, item 1): embedding → nn.LSTM → linear, AdamW, a
character vocabulary, trained for a wall-clock budget on the same text and split as `ghostwrite train`
(the corpus loaded and normalised by the same code, the last 10% of the characters for validation) and
scored the way `ghostwrite eval` scores (one stream, windows of 256, nats per character). It tries a few
hand-picked sizes and batches, each for the whole budget, and reports the best: what someone who knows
LSTMs would get without the product's sizing, schedule and speed work.

    .venv/bin/python bench/baseline_lstm.py --corpus tinyshakespeare.txt --max-time 75
    .venv/bin/python bench/baseline_lstm.py --corpus tinyshakespeare.txt --max-time 20 --configs 1   # smoke

Each configuration's run up to the trained model (vocabulary, model, training) must end within the budget
plus 15 s, like the product's `train`; the scoring afterwards is timed apart, like quality.py's `ghostwrite
eval`. Prints one JSON object (the best run, and every run) as its last line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (layers, hidden, batch, window, lr): the hand-tuned 1x512 first (1,872 steps at 600 s on AVX2)
CONFIGS = [(1, 512, 16, 128, 3e-3), (1, 384, 32, 64, 3e-3), (2, 384, 16, 128, 2e-3)]
EMB = 128


def corpus_text(path: str) -> tuple[str, str]:
    """(train, validation) as `ghostwrite train` splits them; several files (a,b,c) are joined."""
    from generator.corpora.corpus import load_corpus, split_text

    parts = [load_corpus(p).text for p in path.split(",")]
    return split_text("\n".join(parts), 0.1)


def run(train_text: str, val_text: str, cfg: tuple, budget_s: float, seed: int = 0) -> dict:
    import numpy as np
    import torch
    from torch import nn
    from torch.nn import functional as F

    from generator.training.evaluate import score_tokens

    t_start = time.perf_counter()
    torch.manual_seed(seed)
    layers, hidden, batch, window, lr = cfg
    chars = sorted(set(train_text))
    index = {c: i + 1 for i, c in enumerate(chars)}  # 0: a character the training text never had
    V = len(chars) + 1
    train = torch.tensor([index[c] for c in train_text], dtype=torch.long)
    val = np.asarray([index.get(c, 0) for c in val_text], dtype=np.int64)

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, EMB)
            self.lstm = nn.LSTM(EMB, hidden, num_layers=layers, batch_first=True)
            self.head = nn.Linear(hidden, V)

        def forward(self, x, hc=None):
            out, hc = self.lstm(self.embed(x), hc)
            return self.head(out), hc, None

    model = Plain()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    n = (len(train) - 1) // batch
    xs, ys = train[: n * batch].view(batch, n), train[1 : n * batch + 1].view(batch, n)  # contiguous streams
    train_until = t_start + budget_s  # (scored afterwards, as quality.py scores the product with ghostwrite eval)
    steps, pos, hc = 0, 0, None
    t0 = time.perf_counter()
    while time.perf_counter() < train_until:
        frac = (time.perf_counter() - t0) / max(1e-9, train_until - t0)
        scale = min(1.0, frac / 0.02) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
        for g in opt.param_groups:
            g["lr"] = lr * scale  # warm-up, then a cosine to 10% over the wall-clock budget
        if pos + window > n:
            pos, hc = 0, None
        x, y = xs[:, pos : pos + window], ys[:, pos : pos + window]
        pos += window
        logits, hc, _ = model(x, hc)
        hc = tuple(h.detach() for h in hc)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
    train_s = time.perf_counter() - t0
    wall = time.perf_counter() - t_start
    t1 = time.perf_counter()
    nats, count = score_tokens(model, val, streams=1, seq_len=256)
    return {"config": {"layers": layers, "hidden": hidden, "emb": EMB, "batch": batch, "window": window, "lr": lr},
            "nats_per_char": round(nats / count, 4), "steps": steps, "train_s": round(train_s, 1),
            "wall_s": round(wall, 1), "score_s": round(time.perf_counter() - t1, 1),
            "tokens_per_s": round(steps * batch * window / max(train_s, 1e-9))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, help="a file, a name in ../shared/corpora, or several joined by commas")
    ap.add_argument("--max-time", type=float, required=True, help="seconds per configuration")
    ap.add_argument("--configs", type=int, default=len(CONFIGS), help="how many of CONFIGS to try (in order)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    shared = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    path = ",".join(p if Path(p).exists() else str(shared / p) for p in a.corpus.split(","))
    train_text, val_text = corpus_text(path)
    runs = []
    for cfg in CONFIGS[: a.configs]:
        r = run(train_text, val_text, cfg, a.max_time)
        r["within_budget"] = r["wall_s"] <= a.max_time + 15
        print(json.dumps(r), file=sys.stderr, flush=True)
        runs.append(r)
    best = min(runs, key=lambda r: r["nats_per_char"])
    print(json.dumps({"corpus": a.corpus, "budget_s": a.max_time, "threads": a.threads, "best": best, "runs": runs}))


if __name__ == "__main__":
    main()
