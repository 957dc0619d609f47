"""Two `train` runs of one name at once: the second is refused in one line (the run's flock), a run
killed with SIGKILL can be resumed at once (the kernel drops the lock), `--resume` with no run writes
nothing, and a publish or load whose tokenizer, card and weights disagree is refused. Before, the second
run re-prepared the folder under the first, which then published its weights with the other's
tokenizer (63 vs 1,796 symbols) and generation silently wrote garbage."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import generator
from generator import checkpoint, registry
from generator.errors import GhostwriteError
from generator.tokenizers import CharTokenizer, tokenizer_from_dict
from generator.training import runs
from generator.training.trainer import TrainConfig, train

TRAIN = [sys.executable, "-m", "bot.cli", "train"]  # `ghostwrite train`


def _env(home):
    env = {**os.environ, "GHOSTWRITE_HOME": str(home), "GHOSTWRITE_THREADS": "1"}
    env.pop("GHOSTWRITE_DATABASE_URL", None)
    return env


def _args(corpus, steps, *extra):
    return [str(corpus), "--name", "race", "--preset", "tiny", "--max-steps", str(steps), "--batch-size", "8",
            "--seq-len", "32", "--checkpoint-every", "5", "--device", "cpu", "--threads", "1", "--quiet", *extra]


HOLD_RUN = """
import sys, time
from generator.training.runlock import RunLock
lock = RunLock(sys.argv[1])
print("held", flush=True)
time.sleep(600)
"""


def test_a_held_run_refuses_a_second_train_until_its_holder_is_killed(tiny_corpus, fresh_home):
    """A run in progress (here a process that only holds the run's lock; the real thing, a training
    process killed with SIGKILL and resumed, is the drill tests/drills/test_drill_train_race.py)."""
    cfg = dict(corpus=str(tiny_corpus), name="race", preset="tiny")
    runs.release(runs.prepare(TrainConfig(**cfg)))
    prepared = {f: (fresh_home / "runs" / "race" / f).read_bytes() for f in ("run.json", "tokenizer.json")}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_RUN, "race"], env=_env(fresh_home), stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = subprocess.run(TRAIN + _args(tiny_corpus, 5), env=_env(fresh_home), capture_output=True, text=True,
                                timeout=300)
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 2 and len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
        assert f"'race' is already being trained (process {holder.pid})" in lines[0]
        with pytest.raises(GhostwriteError, match="already being trained"):
            runs.prepare(TrainConfig(**cfg, resume=True))
        assert {f: (fresh_home / "runs" / "race" / f).read_bytes() for f in prepared} == prepared
        holder.kill()  # SIGKILL: the kernel lets go of the lock; there is nothing stale to clean
        holder.wait()
        resumed = runs.prepare(TrainConfig(**cfg, resume=True))
        assert resumed.meta["name"] == "race" and resumed.lock is not None
        runs.release(resumed)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_one_process_may_hold_its_own_run_twice(tiny_corpus, fresh_home):
    cfg = dict(corpus=str(tiny_corpus), name="twice", preset="tiny")
    first = runs.prepare(TrainConfig(**cfg))
    again = runs.prepare(TrainConfig(**cfg, resume=True))  # shared within the process, counted
    runs.release(first)
    probe = subprocess.run([sys.executable, "-c", HOLD_RUN, "twice"], env=_env(fresh_home), capture_output=True,
                           text=True, timeout=60)
    assert probe.returncode == 1 and "already being trained" in probe.stderr
    runs.release(again)
    probe = subprocess.Popen([sys.executable, "-c", HOLD_RUN, "twice"], env=_env(fresh_home), stdout=subprocess.PIPE,
                             text=True)
    try:
        assert probe.stdout.readline().strip() == "held"
    finally:
        probe.kill()
        probe.wait()


def test_resume_with_no_run_writes_nothing(tiny_corpus, fresh_home):
    with pytest.raises(GhostwriteError, match="nothing to resume for 'never'"):
        train(TrainConfig(corpus=str(tiny_corpus), name="never", resume=True, max_steps=5))
    assert not (fresh_home / "runs" / "never").exists()


def _copy_model(src_home, version: int, dst_home, name: str):
    dst = dst_home / "models" / name / "v1"
    shutil.copytree(src_home / "models" / "tiny" / f"v{version}", dst)
    card = json.loads((dst / "card.json").read_text())
    (dst / "card.json").write_text(json.dumps({**card, "name": name, "version": 1}))
    return dst


def test_loading_a_mismatched_set_is_refused(tiny_model, session_home, fresh_home):
    good = _copy_model(session_home, tiny_model["version"], fresh_home, "good")
    assert generator.load("good").complete("The", {"length": 5, "seed": 1})
    # the tokenizer of another run (fewer symbols) beside these weights
    mixed = _copy_model(session_home, tiny_model["version"], fresh_home, "mixed")
    (mixed / "tokenizer.json").write_text(json.dumps(CharTokenizer(list("abcdefg ")).to_dict()))
    with pytest.raises(GhostwriteError, match=r"refusing to load mixed@v1: .*vocabulary sizes differ: tokenizer 9"):
        generator.load("mixed")
    # a card that describes another model
    card = json.loads((good / "card.json").read_text())
    lying = _copy_model(session_home, tiny_model["version"], fresh_home, "lying")
    (lying / "card.json").write_text(json.dumps({**card, "name": "lying", "model": {**card["model"], "hidden_size": 512}}))
    with pytest.raises(GhostwriteError, match="the card's model is not the checkpoint's: hidden_size 512 vs 64"):
        generator.load("lying")
    # weights in two dtypes
    state, meta = checkpoint.load(good / "model.pt")
    halved = {**state["model"], "head.bias": state["model"]["head.bias"].half()}
    mixed_dtypes = _copy_model(session_home, tiny_model["version"], fresh_home, "dtypes")
    checkpoint.save(mixed_dtypes / "model.pt", {"model": halved}, meta)
    with pytest.raises(GhostwriteError, match="weights in float16, float32"):
        generator.load("dtypes")


def test_check_model_set_sees_every_disagreement(tiny_model, session_home):
    folder = registry.model_dir("tiny", tiny_model["version"])
    state, meta = checkpoint.load(folder / "model.pt")
    tok = tokenizer_from_dict(json.loads((folder / "tokenizer.json").read_text()))
    card = registry.read_card("tiny", tiny_model["version"])
    checkpoint.check_model_set(state["model"], meta, tok, card, "tiny")  # the real set agrees
    bad = {
        "vocabulary sizes differ": (state["model"], meta, tok, {**card, "tokenizer": {**card["tokenizer"], "vocab_size": 7}}),
        "tokenizer kinds differ": (state["model"], meta, tok, {**card, "tokenizer": {**card["tokenizer"], "kind": "sp"}}),
        "lstm.weight_hh_l0 is": (
            {**state["model"], "lstm.weight_hh_l0": torch.zeros(3, 3)}, meta, tok, card),
        "tensors missing": ({k: v for k, v in state["model"].items() if k != "head.bias"}, meta, tok, card),
        "one floating-point dtype": (
            {k: v.to(torch.int64) for k, v in state["model"].items()}, meta, tok, card),
    }
    for needle, args in bad.items():
        with pytest.raises(GhostwriteError, match=needle):
            checkpoint.check_model_set(*args, "tiny")


def test_publishing_a_mismatched_set_is_refused(tiny_corpus, fresh_home, monkeypatch):
    """The race, replayed in one process: another run's tokenizer lands in the run folder before publish."""
    real_publish = runs.publish

    def publish_after_a_second_prepare(trainer, figures, elapsed):
        other = CharTokenizer(list("xyz"))
        (trainer.run.dir / "tokenizer.json").write_text(json.dumps(other.to_dict()))
        return real_publish(trainer, figures, elapsed)

    monkeypatch.setattr(runs, "publish", publish_after_a_second_prepare)
    with pytest.raises(GhostwriteError, match=r"refusing to publish mixed: .*vocabulary sizes differ: tokenizer 4"):
        train(TrainConfig(corpus=str(tiny_corpus), name="mixed", preset="tiny", max_steps=3, batch_size=4, seq_len=16,
                          device="cpu"))
    assert registry.versions("mixed") == []
    assert not list((fresh_home / "models" / "mixed").glob(".staging-*"))


# ---- what a publish killed part-way leaves ----------------------------------------------------------------
HOLD_STAGING = """
import sys, time
from pathlib import Path
from generator import registry
parent = Path(sys.argv[1]); parent.mkdir(parents=True, exist_ok=True)
staging, fd = registry._new_staging(parent)
print(staging, flush=True)
time.sleep(600)
"""


def test_stale_staging_is_cleaned_at_the_next_publish(fresh_home):
    parent = fresh_home / "models" / "m"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_STAGING, str(parent)], stdout=subprocess.PIPE, text=True,
                              env=_env(fresh_home))
    try:
        staging = parent / os.path.basename(holder.stdout.readline().strip())
        assert staging.name.startswith(".staging-") and staging.is_dir()
        (staging / "model.pt").write_bytes(b"half a model")
        assert registry.register("m", {"model.pt": b"a"}, {"k": 1}) == 1
        assert staging.is_dir()  # its publisher is alive: not touched
        holder.kill()  # kill -9 in the middle of publishing
        holder.wait()
        assert registry.register("m", {"model.pt": b"b"}, {"k": 2}) == 2
        assert not staging.exists()
        assert sorted(p.name for p in parent.iterdir()) == ["v1", "v2"]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_resume_cleans_stale_staging(tiny_corpus, fresh_home):
    runs.release(runs.prepare(TrainConfig(corpus=str(tiny_corpus), name="r", preset="tiny")))
    left = fresh_home / "models" / "r" / ".staging-abc123"
    left.mkdir(parents=True)
    (left / "card.json").write_text("{}")
    run = runs.prepare(TrainConfig(corpus=str(tiny_corpus), name="r", resume=True))
    runs.release(run)
    assert not left.exists()
