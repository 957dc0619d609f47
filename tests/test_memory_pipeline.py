"""Corpora larger than memory: a big corpus file is prepared streaming from disk (read in chunks, never
whole) and gives the same split, char vocabulary and token files as the in-memory path."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from textgen import synthetic_text

from generator.corpora.textfiles import read_text_file
from generator.errors import GhostwriteError
from generator.tokenizers import tokenizer_from_dict
from generator.training import runs
from generator.training.data import iter_text_file, read_tokens
from generator.training.trainer import TrainConfig, train


def awkward_text(n=6000, seed=0) -> str:
    rng = random.Random(seed)
    return "\ufeff" + "".join(rng.choice(["abc ", "\r\n", "\r", "\n", "é", "数字", "🙂", "word " * 5])
                              for _ in range(n))


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64, 1 << 20])
def test_streamed_reading_equals_reading_the_whole_file(tmp_path, chunk):
    p = tmp_path / "t.txt"
    p.write_bytes(awkward_text().encode("utf-8"))
    whole = read_text_file(p)
    assert "".join(iter_text_file(p, chunk_bytes=chunk)) == whole
    assert "".join(iter_text_file(p, 777, 20_001, chunk_bytes=chunk)) == whole[777:20_001]
    assert "".join(iter_text_file(p, 20_001, None, chunk_bytes=chunk)) == whole[20_001:]


def test_streamed_reading_refuses_bad_bytes(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"fine text\n" * 100 + b"\xff\xfe broken")
    with pytest.raises(GhostwriteError, match="byte offset 100"):
        list(iter_text_file(p, chunk_bytes=64))
    p.write_bytes(b"text\x00more")
    with pytest.raises(GhostwriteError, match="binary"):
        list(iter_text_file(p))


def prepared(cfg):
    run = runs.prepare(cfg)
    tok = json.loads((run.dir / "tokenizer.json").read_text(encoding="utf-8"))
    return run, tok, (run.dir / "train.bin").read_bytes(), (run.dir / "val.bin").read_bytes()


def test_streamed_char_run_equals_the_in_memory_run(tmp_path, fresh_home, monkeypatch):
    corpus = tmp_path / "big.txt"
    corpus.write_text(synthetic_text(3000, seed=3) + "数字 and émigré\r\n" * 50, encoding="utf-8", newline="")
    run_a, tok_a, tr_a, va_a = prepared(TrainConfig(corpus=str(corpus), name="memory-path"))
    assert not run_a.meta.get("streamed")
    monkeypatch.setenv("GHOSTWRITE_STREAM_BYTES", "0")
    run_b, tok_b, tr_b, va_b = prepared(TrainConfig(corpus=str(corpus), name="streamed-path"))
    assert run_b.meta["streamed"]
    assert tok_a == tok_b and tr_a == tr_b and va_a == va_b
    for k in ("train_tokens", "val_tokens", "train_chars", "val_chars", "corpus_sha256", "lang"):
        assert run_a.meta[k] == run_b.meta[k], k


def test_streamed_sp_run_round_trips_and_trains(tmp_path, fresh_home, monkeypatch):
    corpus = tmp_path / "big-sp.txt"
    text = synthetic_text(4000, seed=5)
    corpus.write_text(text, encoding="utf-8")
    monkeypatch.setenv("GHOSTWRITE_STREAM_BYTES", "0")
    monkeypatch.setattr(runs, "SAMPLE_CHARS", 20_000)  # the vocabulary learns from a sample
    run, tok_d, _, _ = prepared(TrainConfig(corpus=str(corpus), name="sp-stream", tokenizer="sp", vocab_size=400))
    tok = tokenizer_from_dict(tok_d)
    ids = read_tokens(run.dir / "train.bin", tok.vocab_size)
    n_train = int(len(text) * 0.9)
    assert tok.decode(np.asarray(ids).tolist()) == text[:n_train]
    card = train(TrainConfig(corpus=str(corpus), name="sp-stream", tokenizer="sp", vocab_size=400, preset="tiny",
                             max_steps=5, batch_size=4, seq_len=16, device="cpu"))
    assert card["val_bpc"] > 0


def test_sample_stays_in_the_training_bytes(tmp_path):
    p = tmp_path / "s.txt"
    lines = [f"line {i} " + "x" * (i % 50) + "\n" for i in range(20_000)]
    p.write_text("".join(lines), encoding="utf-8")
    marks = []
    n = sum(len(c) for c in iter_text_file(p, chunk_bytes=4096, marks=marks))
    n_train = int(n * 0.9)
    limit = max(b for b, c in marks if c <= n_train)
    sample = runs.sample_text(p, n_train, limit, budget=20_000, pieces=16)
    assert 0 < len(sample) <= 20_000 and sample.endswith("\n")
    train_lines = set("".join(lines)[:n_train].splitlines())
    assert all(line in train_lines for line in sample.splitlines())


def test_resuming_a_streamed_run_checks_the_corpus(tmp_path, fresh_home, monkeypatch):
    corpus = tmp_path / "r.txt"
    corpus.write_text(synthetic_text(800, seed=2), encoding="utf-8")
    monkeypatch.setenv("GHOSTWRITE_STREAM_BYTES", "0")
    runs.prepare(TrainConfig(corpus=str(corpus), name="res"))
    again = runs.prepare(TrainConfig(corpus=str(corpus), name="res", resume=True))
    assert again.meta["streamed"]
    corpus.write_text(synthetic_text(800, seed=9), encoding="utf-8")
    with pytest.raises(GhostwriteError, match="corpus changed"):
        runs.prepare(TrainConfig(corpus=str(corpus), name="res", resume=True))
