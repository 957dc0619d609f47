"""DistributedDataParallel on the CPU: 2 processes on gloo.

One run covers both ways in. `ghostwrite train --nproc 2` trains until it has checkpointed past step 10,
then the launcher is killed with SIGKILL (its training processes must die with it); `torchrun -m
bot.cli train --resume` finishes the run, and with `--patience 0` rank 0 stops early at the next
validation on its own, which the other rank must follow. Then: the loss fell, the checkpoint loads, the
published model generates.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from generator import checkpoint
from generator.errors import GhostwriteError
from generator.training.data import StreamBatcher

ROOT = Path(__file__).resolve().parents[1]
STEPS, EVAL_EVERY = 60, 10


def test_each_rank_reads_its_own_streams():
    tokens = np.arange(10_000, dtype=np.uint16)
    a = StreamBatcher(tokens, 4, 16, rank=0, world_size=2)
    b = StreamBatcher(tokens, 4, 16, rank=1, world_size=2)
    xa, _ = a.get(3)
    xb, _ = b.get(3)
    assert len(a) == len(b)
    assert not set(xa.flatten().tolist()) & set(xb.flatten().tolist())
    assert xb.min() > xa.max()  # rank 1 holds the streams after rank 0's


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _args(corpus: Path, extra=()) -> list[str]:
    return [str(corpus), "--name", "ddp", "--preset", "tiny", "--max-steps", str(STEPS), "--batch-size", "8",
            "--seq-len", "32", "--lr", "0.01", "--eval-every", str(EVAL_EVERY), "--checkpoint-every", "5",
            "--device", "cpu", "--threads", "1", "--json", "--quiet", *extra]


def test_two_processes_train_survive_a_kill_resume_under_torchrun_and_publish(tiny_corpus, tmp_path, monkeypatch):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not installed")
    home = tmp_path / "home"
    env = {**os.environ, "GHOSTWRITE_HOME": str(home), "GHOSTWRITE_THREADS": "1", "PYTHONPATH": str(ROOT)}
    t0 = time.monotonic()
    launcher = subprocess.Popen([sys.executable, "-m", "bot.cli", "train", *_args(tiny_corpus), "--nproc", "2"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ck = home / "runs" / "ddp" / "last.pt"
    ranks: set[int] = set()
    killed_at = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and launcher.poll() is None:
        ranks.update(_children(launcher.pid))
        if ck.exists():
            try:
                _, meta = checkpoint.load(ck)
            except GhostwriteError:
                meta = None
            if meta and meta["progress"]["step"] >= 10:
                launcher.send_signal(signal.SIGKILL)
                killed_at = meta["progress"]["step"]
                break
        time.sleep(0.05)
    out, err = launcher.communicate(timeout=30)
    assert killed_at is not None, f"never checkpointed past step 10 (exit {launcher.returncode}):\n{err[-3000:]}"
    t_kill = time.monotonic() - t0
    assert len(ranks) == 2
    gone = time.monotonic() + 15
    while any(_alive(p) for p in ranks) and time.monotonic() < gone:
        time.sleep(0.05)
    assert not any(_alive(p) for p in ranks), "training processes outlived their launcher"
    state, meta = checkpoint.load(ck)  # whole, whatever the moment of the kill
    assert meta["train"]["world_size"] == 2 and killed_at <= meta["progress"]["step"] < STEPS

    resumed_from = meta["progress"]["step"]
    t1 = time.monotonic()
    proc = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "bot.cli", "train",
                           *_args(tiny_corpus, ["--resume", "--patience", "0"])],
                          env=env, capture_output=True, text=True, timeout=240)
    t_resume = time.monotonic() - t1
    assert proc.returncode == 0, proc.stderr[-3000:]
    cards = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert len(cards) == 1  # rank 0 reports; rank 1 prints nothing
    card = json.loads(cards[0])
    # --patience 0: rank 0 stops at the first validation after the resume point, and rank 1 with it
    stop_at = (resumed_from // EVAL_EVERY + 1) * EVAL_EVERY
    assert card["steps"] == stop_at < STEPS
    assert card["train"]["world_size"] == 2 and card["version"] == 1

    state, meta = checkpoint.load(ck)
    assert meta["progress"]["step"] == stop_at
    curve = meta["curve"]["train"]
    assert curve[-1][1] < curve[0][1] * 0.85, curve
    import generator

    monkeypatch.setenv("GHOSTWRITE_HOME", str(home))
    text = generator.load("ddp").complete("KING:\n", {"length": 40, "seed": 1})
    assert len(text) == 40
    print(f"\nDDP gloo x2: killed the launcher at step {killed_at} after {t_kill:.1f} s (both ranks gone); "
          f"torchrun --resume from step {resumed_from} early-stopped at {stop_at} in {t_resume:.1f} s; "
          f"train loss {curve[0][1]:.3f} -> {curve[-1][1]:.3f}, val {card['val_bpc']:.3f} bits/char")


def test_nproc_refused_inside_torchrun(monkeypatch, tiny_corpus):
    from generator.training.distributed import launch
    from generator.training.trainer import TrainConfig

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(GhostwriteError, match="inside torchrun"):
        launch(TrainConfig(corpus=str(tiny_corpus), device="cpu"), 2)
