"""Drill (d): property-based tests (hypothesis) for what tests/test_tokenizers.py does not cover yet, and for
the sampler's parameter validation.

Already covered in tests/test_tokenizers.py: decode(encode(x)) == x for `sp` (unigram and bpe) on arbitrary
Unicode; `word` and `char` exact for text of known characters; no exception for any input (lone surrogates
included); the streaming decoder equals decode; chunked encoding equals whole-text encoding.

Added here:
* `char` and `word` on *any* text: the round trip is the text with exactly the unknown characters replaced by
  the unknown marker, nothing else changed, and no id out of range;
* a tokenizer survives its JSON form (to_dict → json → tokenizer_from_dict) with the same ids on any text;
* `tokenizer_from_dict` on damaged or arbitrary data (a corrupt tokenizer.json) gives a tokenizer or a
  GhostwriteError, never another exception;
* `SamplingSettings.from_dict` on any dict validates (and then every value is in range and the settings
  round-trip through to_dict) or raises GhostwriteError, never another exception; the service's `validate`
  (prompt and settings from a user) likewise.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.errors import GhostwriteError
from generator.generation.settings import MAX_LENGTH, UNITS, SamplingSettings
from generator.tokenizers import UNK_TEXT, tokenizer_from_dict, train_tokenizer

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
        "第一回　灵根育孕源流出　心性修持大道生\n混沌未分天地乱，茫茫渺渺无人见。\n"
        "emoji: 😀🎭 and café, naïve, Ελληνικά.\n") * 40
RUNS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                  HealthCheck.filter_too_much])

SURROGATES = st.sampled_from(["\ud800", "\udfff", "\udc80"])
ANY_TEXT = st.text(st.one_of(st.characters(), SURROGATES), max_size=120)


@pytest.fixture(scope="module")
def toks():
    return {"char": train_tokenizer("char", TEXT), "word": train_tokenizer("word", TEXT),
            "sp": train_tokenizer("sp", TEXT, vocab_size=400)}


def _known(tok) -> set[str]:
    return {ch for ch in TEXT if tok.encode(ch) != [tok.unk_id]}


@settings(max_examples=200, **RUNS)
@given(text=st.text(st.one_of(st.sampled_from(sorted(set(TEXT))), st.characters(), SURROGATES), max_size=120))
def test_prop_char_and_word_round_trip_marks_exactly_the_unknown(toks, text):
    for kind in ("char", "word"):
        tok = toks[kind]
        alphabet = set(TEXT)
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        expected = "".join(ch if ch in alphabet else UNK_TEXT for ch in text)
        assert tok.decode(ids) == expected, kind


@settings(max_examples=100, **RUNS)
@given(text=ANY_TEXT)
def test_prop_tokenizer_survives_its_json_form(toks, text):
    for tok in toks.values():
        again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
        assert again.encode(text) == tok.encode(text)
        assert again.vocab_size == tok.vocab_size


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                    max_size=4), max_leaves=10)


@settings(max_examples=200, **RUNS)
@given(data=st.data())
def test_prop_damaged_tokenizer_json_is_a_clear_error(toks, data):
    kind = data.draw(st.sampled_from(sorted(toks)))
    d = dict(toks[kind].to_dict())
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(d) + ["extra"]))
        if data.draw(st.booleans()) and key in d:
            del d[key]
        else:
            d[key] = data.draw(JSONISH)
    try:
        tok = tokenizer_from_dict(d)
    except GhostwriteError:
        return
    tok.decode(tok.encode("hear me speak"))  # a tokenizer it accepted must work


@settings(max_examples=100, **RUNS)
@given(d=st.one_of(JSONISH, st.dictionaries(st.sampled_from(["kind", "format", "vocab", "model", "x"]), JSONISH)))
def test_prop_arbitrary_tokenizer_data_is_a_clear_error(d):
    try:
        tokenizer_from_dict(d)
    except GhostwriteError:
        pass


@pytest.mark.parametrize("damage", [{"kind": []}, {"kind": {"a": 1}}, {"format": None}, {"format": "2"},
                                    {"unk_text": None}])
def test_corrupt_tokenizer_json_types_are_refused_cleanly(toks, damage):
    d = {**toks["char"].to_dict(), **damage}
    with pytest.raises(GhostwriteError):
        tokenizer_from_dict(d).decode([0, 1])


FIELDS = ["temperature", "top_k", "top_p", "repetition_penalty", "length", "unit", "seed", "penalty"]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 30_000), st.integers(), st.floats(), st.floats(-2, 12),
    st.sampled_from(list(UNITS)), st.text(max_size=12), st.sampled_from(["0.5", "3", "nan", "inf", "1e3", " 7 "]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _check_valid(s: SamplingSettings) -> None:
    assert isinstance(s.temperature, float) and 0 <= s.temperature <= 10
    assert isinstance(s.top_k, int) and s.top_k >= 0
    assert isinstance(s.top_p, float) and 0 < s.top_p <= 1
    assert isinstance(s.repetition_penalty, float) and 0 < s.repetition_penalty <= 10
    assert s.unit in UNITS and isinstance(s.length, int) and 1 <= s.length <= MAX_LENGTH[s.unit]
    assert s.seed is None or (isinstance(s.seed, int) and 0 <= s.seed < 2**63)
    assert SamplingSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s


@settings(max_examples=600, **RUNS)
@given(d=st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), VALUES, max_size=6))
def test_prop_sampling_settings_validate_or_refuse_cleanly(d):
    try:
        s = SamplingSettings.from_dict(d)
    except GhostwriteError as e:
        assert "\n" not in str(e) and 0 < len(str(e)) < 2000  # one line, fits a Discord message
        return
    _check_valid(s)


@pytest.mark.parametrize("bad", [{"top_k": math.inf}, {"length": -math.inf}, {"seed": math.inf},
                                 {"temperature": 10**400}, {"top_p": -(10**400)}])
def test_overflowing_numbers_are_refused_cleanly(bad):
    with pytest.raises(GhostwriteError):
        SamplingSettings.from_dict(bad)


@settings(max_examples=300, **RUNS)
@given(prompt=st.one_of(ANY_TEXT, st.none(), st.integers(), st.binary(max_size=10)),
       d=st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=4))
def test_prop_service_validate_refuses_cleanly(prompt, d):
    from bot.service import ContinuationService, Request

    svc = ContinuationService.__new__(ContinuationService)  # validate() needs no store, model or threads
    try:
        svc.validate(Request(prompt=prompt, settings=d))
    except GhostwriteError:
        pass
