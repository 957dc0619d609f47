"""Training: loss falls, exact resume after a kill, fine-tuning makes a new version, budgets hold."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from generator import checkpoint, registry
from generator.errors import GhostwriteError
from generator.training.trainer import TrainConfig, train

GW = [sys.executable, "-m", "bot.cli"]


def cli_env(home, **extra):
    return {**os.environ, "GHOSTWRITE_HOME": str(home), "GHOSTWRITE_THREADS": "1", **extra}


def test_loss_falls_and_card_is_complete(tiny_model, session_home):
    card = tiny_model
    for key in ("corpus", "corpus_sha256", "tokenizer", "model", "parameters", "val_bpc", "training_seconds",
                "device", "created", "version"):
        assert key in card, key
    curve = json.loads((session_home / "models" / "tiny" / f"v{card['version']}" / "curve.json").read_text())
    first, last = curve["train"][0][1], curve["train"][-1][1]
    assert last < first * 0.8
    assert (session_home / "models" / "tiny" / f"v{card['version']}" / "loss.png").read_bytes()[:4] == b"\x89PNG"


def _args(corpus, name, steps):
    return ["train", str(corpus), "--name", name, "--preset", "tiny", "--max-steps", str(steps), "--batch-size", "8",
            "--seq-len", "32", "--lr", "0.01", "--dropout", "0.1", "--eval-every", "15", "--checkpoint-every", "5",
            "--device", "cpu", "--threads", "1", "--json", "--quiet"]


def test_exact_resume_after_kill(tiny_corpus, tmp_path):
    steps = 120
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    subprocess.run(GW + _args(tiny_corpus, "r", steps), env=cli_env(home_a), check=True, capture_output=True)
    # the same run, killed with SIGKILL once it has checkpointed past step 20, then resumed
    proc = subprocess.Popen(GW + _args(tiny_corpus, "r", steps), env=cli_env(home_b),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = home_b / "runs" / "r" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline:
        if ck.exists():
            try:
                _, meta = checkpoint.load(ck)
                if meta["progress"]["step"] >= 20:
                    break
            except GhostwriteError:
                pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, meta = checkpoint.load(ck)  # never torn, whatever the moment of the kill
    killed_at = meta["progress"]["step"]
    assert 20 <= killed_at < steps
    out = subprocess.run(GW + _args(tiny_corpus, "r", steps) + ["--resume"], env=cli_env(home_b), check=True,
                         capture_output=True, text=True)
    card = json.loads(out.stdout.strip().splitlines()[-1])
    a, _ = checkpoint.load(home_a / "runs" / "r" / "last.pt")
    b, meta_b = checkpoint.load(home_b / "runs" / "r" / "last.pt")
    assert meta_b["progress"]["step"] == steps
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    card_a = json.loads((home_a / "models" / "r" / "v1" / "card.json").read_text())
    assert card["val_bpc"] == card_a["val_bpc"]


def test_resume_without_a_run_is_an_error(tiny_corpus, fresh_home):
    with pytest.raises(GhostwriteError, match="nothing to resume"):
        train(TrainConfig(corpus=str(tiny_corpus), name="never", resume=True, max_steps=5))


def test_fine_tune_keeps_tokenizer_and_makes_new_version(tiny_model, tmp_path, session_home):
    other = tmp_path / "other.txt"
    other.write_text("JULIET:\nO sweet night, the stars are fair and gentle.\n" * 300, encoding="utf-8")
    card = train(TrainConfig(corpus=str(other), name="tiny-ft", base="tiny", max_steps=20, batch_size=8,
                             seq_len=32, device="cpu"))
    assert card["base_model"] == "tiny" and card["version"] == 1
    assert card["model"] == tiny_model["model"]
    tok_a = json.loads((session_home / "models" / "tiny" / f"v{tiny_model['version']}" / "tokenizer.json").read_text())
    tok_b = json.loads((session_home / "models" / "tiny-ft" / "v1" / "tokenizer.json").read_text())
    assert tok_a == tok_b
    registry.remove("tiny-ft")


def test_max_time_budget_is_kept(tiny_corpus, fresh_home):
    t0 = time.monotonic()
    card = train(TrainConfig(corpus=str(tiny_corpus), name="budget", max_time=6, device="cpu"))
    took = time.monotonic() - t0
    assert card["steps"] > 0
    assert took < 6 + 8, took  # the budget plus start-up slack


@pytest.mark.parametrize("kind", ["word", "sp"])
def test_other_tokenizers_train_and_generate(tiny_models, kind):
    import generator

    card = tiny_models[kind]
    assert card["tokenizer"]["kind"] == kind and card["val_bpc"] > 0
    lm = generator.load(card["name"])
    text = lm.complete("KING:\n", {"length": 5, "unit": "words", "seed": 1})
    assert len(text.split()) == 5
