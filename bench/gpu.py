"""GPU (issue section 5): the trainer against a bare nn.LSTM loop of the same size, bf16 autocast + cuDNN.

    .venv/bin/python bench/gpu.py            # on a machine with a CUDA GPU; exits 2 elsewhere

For the default GPU preset (medium, 2x512) and a 3x1024 model: training tokens/s of
`ghostwrite train --max-steps N` (its training loop only: the model card's timing, validations left out)
and of a bare forward + backward + AdamW loop over random tokens with the same batch, window and
autocast; the trainer should reach >= 90% of the bare loop. Then validation bits/char after
`ghostwrite train tinyshakespeare --max-time 75` on the GPU. Writes bench/results/gpu.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from _common import REPO, corpus, machine, median, table, write_results

SIZES = {"medium (default)": ("medium", 512, 2), "3x1024": ("large", 1024, 3)}


def bare_loop(hidden: int, layers: int, vocab: int, batch: int, seq: int, steps: int = 30) -> float:
    """Tokens/s of embedding -> nn.LSTM -> head, forward + backward + fused AdamW, bf16 autocast."""
    import torch

    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    emb = torch.nn.Embedding(vocab, hidden).to(dev)
    lstm = torch.nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True).to(dev)
    head = torch.nn.Linear(hidden, vocab).to(dev)
    params = [*emb.parameters(), *lstm.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, fused=True)
    x = torch.randint(0, vocab, (batch, seq), device=dev)
    times = []
    for i in range(steps + 5):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out, _ = lstm(emb(x))
            loss = torch.nn.functional.cross_entropy(head(out).flatten(0, 1).float(), x.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    return batch * seq / median(times)


def train(args: list[str], home: str) -> dict:
    env = {**os.environ, "GHOSTWRITE_HOME": home}
    r = subprocess.run([sys.executable, "-m", "bot.cli", "train", str(corpus("tinyshakespeare.txt")), "--device", "cuda",
                        "--json", "--quiet", *args], env=env, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"ghostwrite train failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    import torch

    if not torch.cuda.is_available():
        print("bench/gpu.py needs a CUDA GPU (none visible here)", file=sys.stderr)
        raise SystemExit(2)
    info = {**machine(), "gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()}
    print(json.dumps(info), flush=True)
    rows = []
    for label, (preset, hidden, layers) in SIZES.items():
        with tempfile.TemporaryDirectory() as home:
            card = train(["--preset", preset, "--max-steps", "150", "--name", "gpu"], home)
        tr, t = card["train"], card.get("timing") or {}
        loop_s = (t.get("loop_s") or card["training_seconds"]) - t.get("validation_s", 0.0)
        trainer_tps = card["steps"] * tr["batch_size"] * tr["seq_len"] / loop_s
        bare_tps = bare_loop(hidden, layers, card["tokenizer"]["vocab_size"], tr["batch_size"], tr["seq_len"])
        rows.append({"model": label, "batch": tr["batch_size"], "seq_len": tr["seq_len"],
                     "trainer_tok_s": round(trainer_tps), "bare_tok_s": round(bare_tps),
                     "ratio": round(trainer_tps / bare_tps, 3), "meets_90pct": trainer_tps >= 0.9 * bare_tps})
        print(rows[-1], flush=True)
    table("Training tokens/s on the GPU: trainer vs bare nn.LSTM loop (bf16, cuDNN)", rows,
          ["model", "batch", "seq_len", "trainer_tok_s", "bare_tok_s", "ratio"])
    with tempfile.TemporaryDirectory() as home:
        t0 = time.perf_counter()
        card = train(["--max-time", "75"], home)
        wall = time.perf_counter() - t0
    budget = {"budget_s": 75, "wall_s": round(wall, 1), "val_bpc": card["val_bpc"],
              "val_nats_per_char": card["val_nats_per_char"], "model": card["model"], "steps": card["steps"]}
    print(budget, flush=True)
    write_results("gpu", {"machine": info, "throughput": rows, "budget_75s": budget})


if __name__ == "__main__":
    main()
