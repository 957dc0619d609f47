"""Tokenizers: round trips (English, Chinese, emoji, CRLF), unknown characters, streaming decode,
chunked encoding, saving as JSON, and property tests."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shared_corpora import shared_path
from textgen import chinese_text, english_text

from generator.errors import GhostwriteError
from generator.tokenizers import (
    UNK_TEXT,
    CharTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    WordTokenizer,
    is_cjk_heavy,
    tokenizer_from_dict,
    train_tokenizer,
)
from generator.tokenizers.sp import MAX_SEGMENT, iter_segments
from generator.tokenizers.word import split_tokens

KINDS = ("char", "word", "sp")

ENGLISH = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n\n"
    "First Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n\n"
    "All:\nWe know't, we know't.\n\n"
    "First Citizen:\nLet us kill him, and we'll have corn at our own price.\nIs't a verdict?\n\n"
    "  Indented line\twith a tab, numbers 1234 and 56.7, and   three spaces.\n"
)
CHINESE = (
    "第一回　灵根育孕源流出　心性修持大道生\n\n诗曰：\n\n混沌未分天地乱，茫茫渺渺无人见。\n\n"
    "自从盘古破鸿蒙，开辟从兹清浊辨。\n\n盖闻天地之数，有十二万九千六百岁为一元。"
    "将一元分为十二会，乃子、丑、寅、卯、辰、巳、午、未、申、酉、戌、亥之十二支也。\n"
)


def _slice(name: str, start: int, n: int) -> str | None:
    p = shared_path(name)
    if p is None:
        return None
    return p.read_text(encoding="utf-8")[start : start + n]


@pytest.fixture(scope="module")
def en_text() -> str:
    # without the shared corpora: the hand-written lines (quotes, tabs, digits) and a made-up play with a
    # vocabulary of hundreds of words, as much text as the Shakespeare slice
    return _slice("tinyshakespeare.txt", 0, 60_000) or ENGLISH * 20 + english_text(50_000)


@pytest.fixture(scope="module")
def zh_text() -> str:
    # without the shared corpora: the novel's opening and made-up text over ~900 CJK characters
    return _slice("xiyouji.txt", 0, 8_000) or CHINESE * 3 + chinese_text(8_000)


@pytest.fixture(scope="module")
def mixed_text(en_text: str, zh_text: str) -> str:
    return en_text[:30_000] + "\n" + zh_text[:4_000] + "\nemoji: 😀🎭👍🏽 and café, naïve, Ελληνικά.\n"


@pytest.fixture(scope="module")
def toks(mixed_text: str) -> dict[str, Tokenizer]:
    out = {k: train_tokenizer(k, mixed_text) for k in KINDS}
    out["bpe"] = train_tokenizer("sp", mixed_text, sp_type="bpe")
    return out


ALL = (*KINDS, "bpe")


def stream(tok: Tokenizer, ids: list[int]) -> str:
    dec = tok.stream_decoder()
    return "".join(dec.feed(i) for i in ids) + dec.flush()


# --- round trips ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ALL)
def test_round_trip_training_text(toks, mixed_text, kind):
    tok = toks[kind]
    ids = tok.encode(mixed_text)
    assert tok.decode(ids) == mixed_text
    assert stream(tok, ids) == mixed_text
    assert 0 < len(ids) <= len(mixed_text)
    assert all(0 <= i < tok.vocab_size for i in ids)


@pytest.mark.parametrize("kind", ALL)
def test_round_trip_chinese(kind, zh_text):
    # trained on Chinese only: coverage 0.9995, rare characters go through byte fallback (sp)
    tok = train_tokenizer(kind if kind != "bpe" else "sp", zh_text, sp_type="bpe" if kind == "bpe" else "unigram")
    ids = tok.encode(zh_text)
    assert tok.decode(ids) == zh_text
    assert stream(tok, ids) == zh_text
    if kind != "char":
        assert len(ids) <= len(zh_text)


def test_chinese_detected(zh_text, en_text):
    assert is_cjk_heavy(zh_text)
    assert not is_cjk_heavy(en_text)


@pytest.mark.parametrize("kind", ("sp", "bpe"))
def test_sp_exact_for_unseen_text(toks, kind):
    tok = toks[kind]
    for text in [
        "完全没见过的字：龘靐齉爩，还有emoji 🦄🧬 and CRLF\r\nlines\r\n",
        "  leading and trailing spaces  \n\n\n\t\ttabs\x00nul\x7f",
        "the marker \u2581 itself, twice\u2581\u2581, and at the end\u2581",
        "\u3000全角空格\u3000和标点，。！？「」",
        "",
        " ",
        "\n",
    ]:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert stream(tok, ids) == text


@pytest.mark.parametrize("kind", ("char", "word"))
def test_unknown_characters_do_not_crash(toks, kind):
    tok = toks[kind]
    text = "Speak 🦄 龘 now\r\n"
    ids = tok.encode(text)
    assert tok.unk_id == 0
    assert ids.count(0) == 3  # 🦄, 龘 and \r are unknown
    assert tok.decode(ids) == f"Speak {UNK_TEXT} {UNK_TEXT} now{UNK_TEXT}\n"
    assert stream(tok, ids) == tok.decode(ids)


def test_emoji_known_when_trained(toks):
    for kind in ("char", "word"):
        assert toks[kind].decode(toks[kind].encode("😀🎭 café")) == "😀🎭 café"


def test_crlf_text_round_trips_in_sp_and_known_chars(toks):
    text = "line one\r\nline two\r\n"
    assert toks["sp"].decode(toks["sp"].encode(text)) == text
    # \r was never seen by char/word: it becomes the unknown token, the rest survives
    assert toks["char"].decode(toks["char"].encode(text)) == text.replace("\r", UNK_TEXT)


def test_decode_out_of_range_ids(toks):
    for tok in toks.values():
        assert tok.decode([-1, tok.vocab_size, 10**9]) == UNK_TEXT * 3
        assert stream(tok, [-1, tok.vocab_size]) == UNK_TEXT * 2


def test_decode_accepts_numpy(toks, mixed_text):
    for tok in toks.values():
        arr = tok.encode_array(mixed_text[:500])
        assert arr.dtype == np.int32
        assert tok.decode(arr) == tok.decode(arr.tolist())


# --- word tokenizer -----------------------------------------------------------------------------------
def test_word_splitting():
    assert split_tokens("Don't stop, o'er 2024 years!\n\n  ok") == [
        "Don't", " ", "stop", ",", " ", "o'er", " ", "2024", " ", "years", "!", "\n\n  ", "ok",
    ]  # fmt: skip
    assert split_tokens("孙悟空说：好！abc") == ["孙", "悟", "空", "说", "：", "好", "！", "abc"]


def test_word_vocab_and_oov_fallback(en_text):
    tok = train_tokenizer("word", en_text, vocab_size=300)
    assert tok.vocab_size == 300
    assert isinstance(tok, WordTokenizer)
    prompt = "Citizens, unheardofword!"  # OOV words fall back to characters
    ids = tok.encode(prompt)
    assert tok.decode(ids) == prompt
    assert len(ids) > len(split_tokens(prompt))
    # frequent words are single tokens
    assert len(tok.encode(" the")) == 2


def test_word_vocab_cap_smaller_than_alphabet(zh_text):
    tok = train_tokenizer("word", zh_text, vocab_size=50)
    assert tok.vocab_size == 50
    text = zh_text[:200]
    out = tok.decode(tok.encode(text))
    assert len(out) == len(text)  # every character is there, rare ones as the unknown token


def test_char_vocab_cap(en_text):
    tok = train_tokenizer("char", en_text, vocab_size=20)
    assert tok.vocab_size == 20
    assert isinstance(tok, CharTokenizer)
    assert tok.decode(tok.encode("e t")) == "e t"


# --- chunked encoding ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ALL)
def test_encode_iter_matches_whole(toks, mixed_text, kind):
    tok = toks[kind]
    whole = tok.encode_array(mixed_text)
    rng = random.Random(kind)
    for _ in range(3):
        cuts = sorted(rng.sample(range(1, len(mixed_text)), 40))
        chunks = [mixed_text[a:b] for a, b in zip([0, *cuts], [*cuts, len(mixed_text)])]
        got = np.concatenate(list(tok.encode_iter(chunks)))
        assert np.array_equal(got, whole)
    # small blocks through encode_array's own chunking
    assert np.array_equal(tok.encode_array(mixed_text, chunk_chars=997), whole)


def test_sp_long_lines(toks):
    tok = toks["sp"]
    rng = random.Random(1)
    words = ["alpha", "beta", "  ", "gamma", "孙悟空", "\t", "🎭", "▁"]
    line = "".join(rng.choice(words) + " " for _ in range(3000))  # ~20k characters, no newline
    segs = list(iter_segments(line + "\nnext\n"))
    assert "".join(segs) == line + "\nnext\n"
    assert max(len(s) for s in segs) <= MAX_SEGMENT
    ids = tok.encode(line)
    assert tok.decode(ids) == line
    chunks = [line[i : i + 777] for i in range(0, len(line), 777)]
    assert np.array_equal(np.concatenate(list(tok.encode_iter(chunks))), np.array(ids))


# --- saving -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ALL)
def test_to_dict_round_trip(toks, mixed_text, kind):
    tok = toks[kind]
    d = json.loads(json.dumps(tok.to_dict()))
    tok2 = tokenizer_from_dict(d)
    assert type(tok2) is type(tok)
    assert tok2.vocab_size == tok.vocab_size
    sample = mixed_text[:5000] + "🦄 unseen"
    assert tok2.encode(sample) == tok.encode(sample)
    assert tok2.decode(tok.encode(sample)) == tok.decode(tok.encode(sample))
    assert tok2.describe()["kind"] == (kind if kind != "bpe" else "sp")


def test_from_dict_errors(toks):
    with pytest.raises(GhostwriteError):
        tokenizer_from_dict({"kind": "nope"})
    with pytest.raises(GhostwriteError):
        tokenizer_from_dict({"kind": "sp", "model": "not base64!"})
    with pytest.raises(GhostwriteError):
        tokenizer_from_dict({"kind": "sp", "model": "AAAA"})
    with pytest.raises(GhostwriteError):
        tokenizer_from_dict({"kind": "char"})
    d = toks["char"].to_dict()
    d["format"] = 99
    with pytest.raises(GhostwriteError, match="newer"):
        tokenizer_from_dict(d)


def test_train_errors(en_text):
    with pytest.raises(GhostwriteError):
        train_tokenizer("bytes", en_text)
    with pytest.raises(GhostwriteError):
        train_tokenizer("char", "")
    with pytest.raises(GhostwriteError):
        train_tokenizer("sp", en_text, sp_type="wordpiece")
    with pytest.raises(GhostwriteError, match="too small"):
        train_tokenizer("sp", en_text, vocab_size=100)


def test_sp_default_vocab_sizes(en_text, zh_text):
    small = train_tokenizer("sp", en_text[:20_000])
    assert isinstance(small, SentencePieceTokenizer)
    assert 300 <= small.vocab_size <= 1024
    zh = train_tokenizer("sp", zh_text, lang="zh")
    assert zh.vocab_size > 1000


def test_sp_tiny_corpus_soft_vocab_limit():
    tok = train_tokenizer("sp", "abc abc abd\n" * 20, vocab_size=1000)
    assert tok.vocab_size <= 1000
    assert tok.decode(tok.encode("abc xyz 😀\n")) == "abc xyz 😀\n"


# --- streaming --------------------------------------------------------------------------------------
def test_sp_stream_holds_back_partial_characters(toks):
    tok = toks["sp"]
    ids = tok.encode("🦄")  # four byte-fallback tokens
    assert len(ids) == 4
    dec = tok.stream_decoder()
    assert [dec.feed(i) for i in ids] == ["", "", "", "🦄"]
    assert dec.flush() == ""
    dec = tok.stream_decoder()
    dec.feed(ids[0])
    assert dec.flush() == UNK_TEXT  # an incomplete character, flushed


# --- property tests ----------------------------------------------------------------------------------
any_text = st.text(max_size=200)
with_surrogates = st.text(st.one_of(st.characters(), st.sampled_from(["\ud800", "\udfff", "\udc80"])), max_size=50)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=any_text)
def test_prop_sp_exact_for_any_text(toks, text):
    for kind in ("sp", "bpe"):
        tok = toks[kind]
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert stream(tok, ids) == text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_prop_word_and_char_exact_for_known_characters(toks, mixed_text, data):
    alphabet = sorted(set(mixed_text))
    text = data.draw(st.text(st.sampled_from(alphabet), max_size=200))
    for kind in ("char", "word"):
        tok = toks[kind]
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert stream(tok, ids) == text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(any_text, with_surrogates))
def test_prop_no_exception_for_any_input(toks, text):
    for tok in toks.values():
        ids = tok.encode(text)
        out = tok.decode(ids)
        assert isinstance(out, str)
        assert stream(tok, ids) == out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.integers(-3, 9000), max_size=60))
def test_prop_stream_decoder_equals_decode(toks, ids):
    for tok in toks.values():
        assert stream(tok, ids) == tok.decode(ids)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=any_text, cuts=st.lists(st.integers(0, 200), max_size=6))
def test_prop_chunking_does_not_change_tokens(toks, text, cuts):
    points = sorted({c for c in cuts if c < len(text)})
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]
    for tok in toks.values():
        parts = list(tok.encode_iter(chunks))
        got = np.concatenate(parts).tolist() if parts else []
        assert got == tok.encode(text)
