"""SentencePiece on large alphabets: any vocabulary from MIN_VOCAB up works on a text with thousands of
distinct characters; the characters that don't fit are spelled in byte pieces, round trips stay exact,
and the run records how much of the validation split byte pieces spell."""

from __future__ import annotations

import itertools
import json
import random

import numpy as np
import pytest
from conftest import shared_corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.corpora.corpus import split_text
from generator.errors import GhostwriteError
from generator.tokenizers import SentencePieceTokenizer, tokenizer_from_dict, train_tokenizer
from generator.tokenizers.sp import FIXED_PIECES, MIN_VOCAB, kept_characters, training_segments
from generator.training import runs
from generator.training.data import read_tokens
from generator.training.trainer import TrainConfig, train

N_ALPHABET = 3000
ALPHABET = [chr(0x4E00 + 7 * i) for i in range(N_ALPHABET)]  # 3,000 distinct ideographs


def cjk_text(n_chars: int = 40_000, seed: int = 0, spaces: bool = False) -> str:
    """Zipf-distributed ideographs in short lines with Chinese punctuation (no ASCII space unless asked):
    a few hundred frequent characters and a long tail seen once or twice, like a Chinese novel."""
    rng = random.Random(seed)
    weights = list(itertools.accumulate(1 / (r + 1) for r in range(N_ALPHABET)))
    out: list[str] = []
    n = 0
    while n < n_chars:
        line = "".join(rng.choices(ALPHABET, cum_weights=weights, k=rng.randint(8, 30)))
        line += rng.choice("，。！？：；") + (" " if spaces and rng.random() < 0.3 else "")
        out.append(line + ("\n" if rng.random() < 0.4 else ""))
        n += len(out[-1])
    return "".join(out) + "\n"


def pieces(tok: SentencePieceTokenizer) -> list[str]:
    return [v for v in tok._table[1:] if isinstance(v, str) and v != "\n"]


def stream(tok, ids) -> str:
    dec = tok.stream_decoder()
    return "".join(dec.feed(i) for i in ids) + dec.flush()


@pytest.fixture(scope="module")
def text() -> str:
    return cjk_text()


@pytest.fixture(scope="module")
def small(text) -> dict[str, SentencePieceTokenizer]:
    """Vocabularies far smaller than the alphabet (about 2,500 distinct characters in `text`)."""
    return {
        "unigram-300": train_tokenizer("sp", text, vocab_size=300),
        "unigram-1000": train_tokenizer("sp", text, vocab_size=1000, lang="zh"),
        "bpe-1000": train_tokenizer("sp", text, vocab_size=1000, sp_type="bpe"),
        "unigram-min": train_tokenizer("sp", text, vocab_size=MIN_VOCAB),
    }


def test_alphabet_is_larger_than_the_vocabularies(text):
    assert len(set(text)) > 2000


SIZES = {"unigram-300": 300, "unigram-1000": 1000, "bpe-1000": 1000, "unigram-min": MIN_VOCAB}


@pytest.mark.parametrize("name", SIZES)
def test_small_vocabulary_round_trips_exactly(small, text, name):
    tok = small[name]
    assert tok.vocab_size <= SIZES[name]
    for t in (text, cjk_text(5_000, seed=9, spaces=True), "龘靐齉爩 a b  c\u2581 🦄\r\n\t\x00"):
        ids = tok.encode(t)
        assert tok.decode(ids) == t
        assert stream(tok, ids) == t
        assert all(0 <= i < tok.vocab_size for i in ids)
    shares = tok.byte_piece_shares(tok.encode_array(text), len(text))
    assert 0 < shares["byte_char_share"] < 1  # some characters have pieces, others are spelled in bytes


def test_fewer_pieces_keep_fewer_characters(small, text):
    """The character coverage follows the vocabulary size: the characters with a piece of their own are
    the most frequent ones, as many as fit beside the fixed pieces and some room for merges."""
    freq = {c: text.count(c) for c in set(text)}
    kept = {}
    for name in ("unigram-min", "unigram-300", "unigram-1000"):
        tok = small[name]
        singles = {p for p in pieces(tok) if len(p) == 1}
        assert len(singles) <= tok.vocab_size - FIXED_PIECES
        assert " " in singles  # even though the text has no space
        kept[name] = singles
    assert kept["unigram-min"] == {" "}
    assert len(kept["unigram-300"]) < len(kept["unigram-1000"]) < len(set(text))
    # every character kept at 1000 pieces is at least as frequent as every one left out
    left_out = set(text) - kept["unigram-1000"] - {"\n"}
    assert min(freq[c] for c in kept["unigram-1000"] - {" "}) >= max(freq[c] for c in left_out)
    assert any(len(p) > 1 for p in pieces(small["unigram-1000"]))  # room was left for merges


def test_kept_characters_follow_coverage_and_size():
    counts = {"a": 50, "b": 30, "c": 15, "d": 4, "e": 1, "\n": 99}
    assert kept_characters(counts, 1.0, 1000) == ["a", "b", "c", "d", "e", " "]
    assert kept_characters(counts, 0.9, 1000) == ["a", "b", "c", " "]  # 95% at three characters
    assert kept_characters(counts, 1.0, FIXED_PIECES + 3) == ["a", "b", " "]
    assert kept_characters({**counts, " ": 2}, 1.0, FIXED_PIECES + 9) == ["a", "b", "c", "d", " ", "e"]
    assert kept_characters(counts, 1.0, MIN_VOCAB) == [" "]
    with pytest.raises(GhostwriteError, match=f"too small.*at least {MIN_VOCAB}"):
        kept_characters(counts, 1.0, MIN_VOCAB - 1)


def test_too_small_vocabulary_is_one_clear_error(text):
    with pytest.raises(GhostwriteError, match=f"at least {MIN_VOCAB}"):
        train_tokenizer("sp", text, vocab_size=MIN_VOCAB - 1)


def test_training_lines_are_cut_at_characters_without_a_piece():
    segs = list(training_segments("甲乙丙\n丁甲\u2581乙\n", 10_000, cut_at={"丙", "丁"}))
    assert segs == ["甲乙", "\n", "甲", "乙\n", " "]


def test_a_text_without_spaces_still_round_trips_spaces():
    tok = train_tokenizer("sp", "混沌未分天地乱，茫茫渺渺无人见。\n" * 50)
    for t in ("a b", "  ", "混沌 未分\u2581 ", " \u2581\u2581 "):
        assert tok.decode(tok.encode(t)) == t


def test_byte_piece_shares_count_tokens_and_characters(small):
    tok = small["unigram-1000"]
    common = next(c for c in ALPHABET if len(tok.encode(c)) == 1)
    rare = next(c for c in reversed(ALPHABET) if len(tok.encode(c)) == 3)  # three byte pieces
    t = (common + rare) * 10
    ids = tok.encode_array(t)
    assert len(ids) == 40
    assert tok.byte_piece_shares(ids, len(t)) == {"byte_piece_share": 0.75, "byte_char_share": 0.5}
    assert train_tokenizer("char", t).byte_piece_shares(ids, len(t)) == {}


# --- property tests: the small vocabularies stay exact for any text ----------------------------------
alphabet_text = st.text(st.one_of(st.sampled_from(ALPHABET), st.sampled_from("，。 \n\u2581")), max_size=200)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(t=st.one_of(st.text(max_size=200), alphabet_text))
def test_prop_small_vocabulary_exact_for_any_text(small, t):
    for tok in small.values():
        ids = tok.encode(t)
        assert tok.decode(ids) == t
        assert stream(tok, ids) == t


# --- runs: in memory and streamed -----------------------------------------------------------------
def _prepare(cfg):
    run = runs.prepare(cfg)
    tok = tokenizer_from_dict(json.loads((run.dir / "tokenizer.json").read_text(encoding="utf-8")))
    val = np.asarray(read_tokens(run.dir / "val.bin", tok.vocab_size))
    return run, tok, val


def test_runs_record_byte_piece_shares_in_memory_and_streamed(tmp_path, fresh_home, monkeypatch):
    corpus = tmp_path / "zh.txt"
    text = cjk_text(30_000, seed=4)
    corpus.write_text(text, encoding="utf-8")
    _, val_text = split_text(text, 0.1)
    cfg = {"corpus": str(corpus), "tokenizer": "sp", "vocab_size": 600}
    run_a, tok_a, val_a = _prepare(TrainConfig(name="zh-memory", **cfg))
    monkeypatch.setenv("GHOSTWRITE_STREAM_BYTES", "0")
    run_b, tok_b, val_b = _prepare(TrainConfig(name="zh-streamed", **cfg))
    assert run_b.meta["streamed"] and not run_a.meta.get("streamed")
    for run, tok, val in ((run_a, tok_a, val_a), (run_b, tok_b, val_b)):
        assert tok.vocab_size <= 600
        assert tok.decode(val.tolist()) == val_text
        meta = run.meta["tokenizer"]
        assert meta == {"kind": "sp", "vocab_size": tok.vocab_size, **{
            f"val_{k}": v for k, v in tok.byte_piece_shares(val, len(val_text)).items()}}
        assert 0 < meta["val_byte_char_share"] < meta["val_byte_piece_share"] < 1
    assert run_a.meta["tokenizer"] == run_b.meta["tokenizer"]  # the sample is the whole training split here
    # a streamed vocabulary learnt from a small sample: more of the split is spelled in bytes, still exact
    monkeypatch.setattr(runs, "SAMPLE_CHARS", 15_000)
    run_c, tok_c, val_c = _prepare(TrainConfig(name="zh-sampled", **cfg))
    assert tok_c.decode(val_c.tolist()) == val_text
    assert run_c.meta["tokenizer"]["val_byte_char_share"] > run_a.meta["tokenizer"]["val_byte_char_share"]
    card = train(TrainConfig(name="zh-card", preset="tiny", max_steps=3, batch_size=4, seq_len=16, device="cpu",
                             **cfg))
    folder = runs.runs_dir() / "zh-card"
    tok = tokenizer_from_dict(json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")))
    shares = tok.byte_piece_shares(np.asarray(read_tokens(folder / "val.bin", tok.vocab_size)), len(val_text))
    assert card["tokenizer"]["val_byte_piece_share"] == shares["byte_piece_share"] > 0
    assert card["tokenizer"]["val_byte_char_share"] == shares["byte_char_share"] > 0


def test_xiyouji_with_2000_pieces_round_trips_the_whole_novel():
    text = shared_corpus("xiyouji.txt").read_text(encoding="utf-8")
    train_text, val_text = split_text(text, 0.1)
    assert len(set(train_text)) > 4000
    tok = train_tokenizer("sp", train_text, vocab_size=2000, sp_type="bpe", lang="zh")  # bpe: trains in ~1 s
    assert tok.vocab_size <= 2000
    assert tok.decode(tok.encode_array(text)) == text
    shares = tok.byte_piece_shares(tok.encode_array(val_text), len(val_text))
    assert 0 < shares["byte_char_share"] < 0.1
