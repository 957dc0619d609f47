"""The samplers of issue 12: min-p, DRY, logit bias and the UTF-8 mask on hand-made logits; stop strings
and banned strings (with their rewind) on a tiny model; the same seed gives the same text on the
one-step path, the compiled loop and the batching engine with every new setting on."""

from __future__ import annotations

import math

import pytest
import torch

import generator
from generator.errors import GhostwriteError
from generator.generation import extras, fastloop
from generator.generation.guard import Guard
from generator.generation.sampling import LogitsProcessor, sample_rows
from generator.generation.settings import SamplingSettings


@pytest.fixture(scope="module")
def lm(tiny_model):
    return generator.load("tiny", quantize=False)


def proc(V=6, **s):
    return LogitsProcessor(SamplingSettings.from_dict({"temperature": 1.0, "seed": 1, **s}), V)


def adjusted(p: LogitsProcessor, logits: torch.Tensor) -> torch.Tensor:
    ex, on = p.extras.parts()
    return fastloop._adjust(logits.view(1, -1), ex, on).view(-1)


# ---- DRY on hand-made histories ---------------------------------------------------------------------
def test_dry_penalises_exactly_the_tokens_that_extend_a_repeat():
    p = proc(V=6, dry_multiplier=0.8, dry_base=1.75, dry_allowed_length=2)
    # history 0 1 2 3 | 0 1 2 : the repeat "0 1 2" (length 3) was followed by 3 → only 3 is penalised,
    # by 0.8 × 1.75^(3 − 2); "1 2" → 3 too (shorter, smaller); "2" alone is below the allowed length
    for t in [0, 1, 2, 3, 0, 1, 2]:
        p.observe(t)
    got = adjusted(p, torch.zeros(6))
    want = torch.zeros(6)
    want[3] = -0.8 * 1.75 ** (3 - 2)
    assert torch.allclose(got, want)


def test_dry_leaves_short_repeats_and_takes_the_longest_occurrence():
    p = proc(V=6, dry_multiplier=1.0, dry_base=2.0, dry_allowed_length=2)
    for t in [4, 1, 5, 0, 1, 2, 4, 0, 1]:  # "0 1" repeats (length 2: penalised 1×2^0 on 2); "1" → 5 and 2 short
        p.observe(t)
    got = adjusted(p, torch.zeros(6))
    assert got.tolist() == [0, 0, -1.0, 0, 0, 0]
    q = proc(V=6, dry_multiplier=1.0, dry_base=2.0, dry_allowed_length=3)  # allowed 3: nothing yet
    for t in [4, 1, 5, 0, 1, 2, 4, 0, 1]:
        q.observe(t)
    assert adjusted(q, torch.zeros(6)).tolist() == [0.0] * 6


def test_dry_takes_the_largest_penalty_for_a_repeat_longer_than_its_table():
    # a loop of 600 tokens ("0 1 0 1 ..."): the repeat lengths pass the table's DRY_WINDOW + 1 entries
    # (an IndexError in the loop before); the token that goes on with it gets the last (largest) penalty
    p = proc(V=6, dry_multiplier=0.8, dry_base=1.75, dry_allowed_length=2)
    for i in range(600):
        p.observe(i % 2)
    got = adjusted(p, torch.zeros(6))
    assert got[0].item() == -p.extras.table[0, -1].item() and got[0].item() < -1e6
    assert got[1:].tolist() == [0.0] * 5


def test_dry_repeats_do_not_run_across_breakers(tiny_model):
    tok = generator.load("tiny").tokenizer

    def penalties(breakers):
        s = SamplingSettings.from_dict({"dry_multiplier": 1.0, "dry_base": 2.0, "dry_allowed_length": 2,
                                        "dry_breakers": breakers})
        row = extras.RowExtras(s, tok, tok.vocab_size)
        row.prime(tok.encode("e.ths e.th"))
        ex, on = row.parts()
        return -fastloop._adjust(torch.zeros(1, tok.vocab_size), ex, on).view(-1)

    s_id = tok.encode("s")[0]
    across = penalties("")  # no breakers: "e.th" repeats (4 characters) and was followed by "s": 2^(4-2)
    assert across[s_id] == pytest.approx(4.0) and (across > 0).sum() == 1
    stopped = penalties(".")  # "." breaks it: only "th" repeats: 2^0
    assert stopped[s_id] == pytest.approx(1.0) and (stopped > 0).sum() == 1
    dot = penalties("s")  # a breaker itself is never penalised
    assert (dot > 0).sum() == 0


def test_dry_off_changes_nothing():
    p = proc(V=6)
    for t in [0, 1, 0, 1, 0, 1]:
        p.observe(t)
    assert adjusted(p, torch.arange(6.0)).tolist() == list(range(6))


# ---- min-p, logit bias, UTF-8 -------------------------------------------------------------------------
def test_min_p_and_bias_arithmetic_on_the_compiled_functions():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    p = proc(V=4, min_p=0.5)
    ex, on = p.extras.parts()
    draws = {int(fastloop._choose(logits, p.temp, torch.tensor([False]), torch.tensor([u]), ex[7], on[3]))
             for u in torch.linspace(0, 0.999, 200).tolist()}
    assert draws == {0, 1}  # 0.3 ≥ 0.5 × 0.5 > 0.15
    b = proc(V=4)
    b.extras.bias = torch.tensor([[0.0, 0.0, 2.0, -math.inf]])
    assert torch.allclose(adjusted(b, logits[0]), logits[0] + b.extras.bias[0])


def test_bias_items_are_tokens_or_strings(lm):
    vec, longer = extras.token_bias(lm.tokenizer, ["e=+2", "thee=-1.5"])
    e = lm.tokenizer.encode("e")[0]
    assert vec[0, e] == 2.0 and (vec != 0).sum() == 1
    assert longer == [(lm.tokenizer.encode("thee"), -1.5)]
    with pytest.raises(GhostwriteError, match="bias must be TEXT=NUMBER"):
        SamplingSettings.from_dict({"bias": ["thee+2"]})


def test_utf8_mask_lets_byte_pieces_form_only_valid_sequences():
    class Bytes:  # tokens: a word piece, "é" = C3 A9, a stray FF, "€" = E2 82 AC's lead, an ASCII byte
        vocab_size = 6
        unk_id = 0

        def byte_values(self):
            return [None, 0xC3, 0xA9, 0xFF, 0xE2, 0x41]

    row = extras.RowExtras(SamplingSettings(), Bytes(), 6)
    ex, on = row.parts()

    def allowed():
        return set(torch.nonzero(fastloop._adjust(torch.zeros(1, 6), ex, on)[0] == 0).view(-1).tolist())

    assert allowed() == {0, 1, 4, 5}  # no lone continuation byte, never FF
    row.track(1)  # C3: exactly one continuation byte must follow
    assert allowed() == {2}
    row.track(2)
    assert allowed() == {0, 1, 4, 5}
    row.track(4)  # E2: two continuation bytes
    row.track(2)
    assert allowed() == {2}
    row.track(2)
    assert allowed() == {0, 1, 4, 5}


# ---- stop strings -----------------------------------------------------------------------------------
def test_stop_strings_end_before_the_string_across_tokens(lm):
    base = {"temperature": 1.0, "length": 400, "seed": 3}
    free = lm.complete("KING:\n", base)
    stop = free[120:123]  # three characters: three tokens of a char model, found across them
    g = lm.generate("KING:\n", {**base, "stop": [stop]})
    pieces = list(g)
    assert g.text == "".join(pieces) == free[: free.index(stop)] and g.finish_reason == "stop"
    assert lm.generate("KING:\n", base).finish_reason is None or True
    full = lm.generate("KING:\n", {**base, "stop": ["\x00never"]})
    assert "".join(full) == free and full.finish_reason == "length"


def test_stop_string_text_is_held_back_until_it_cannot_be_one(lm):
    base = {"temperature": 1.0, "length": 300, "seed": 4}
    free = lm.complete("KING:\n", base)
    prefix = free[50:52] + "\x01"  # starts like the text at 50 but is never completed
    g = lm.generate("KING:\n", {**base, "stop": [prefix]})
    assert "".join(g) == free and g.finish_reason == "length"


# ---- banned strings ---------------------------------------------------------------------------------
def _liked(lm, n=3):
    """Strings the tiny model writes most often: what a ban must fight."""
    text = lm.complete("\n", {"temperature": 1.0, "length": 3000, "seed": 1})
    counts = {}
    for i in range(len(text) - n):
        w = text[i : i + n]
        if w.strip() == w and w.isalpha():
            counts[w] = counts.get(w, 0) + 1
    return sorted(counts, key=counts.get, reverse=True)[:2]


def test_banned_strings_never_appear_in_10000_characters(lm):
    bans = _liked(lm) + ["e e"]
    s = {"temperature": 1.0, "length": 10_000, "seed": 7, "ban": bans}
    g = lm.generate("\n", s)
    text = "".join(g)
    assert len(text) == 10_000 and g.text == text
    for w in bans:
        assert w not in text
    served = "".join(lm.serve("\n", {**s, "length": 2_000}))  # the batching engine: the same text as alone
    assert served == lm.complete("\n", {**s, "length": 2_000}) and all(w not in served for w in bans)


def test_rewind_restores_the_state_exactly(lm):
    """After a rewind the request is where its snapshot was taken: text, counters, sampler state and the
    network's state and logits, compared with a run that never went past that point."""
    from generator.generation.batch import Batch

    ban = _liked(lm)[0]
    gen = lm.generate("\n", {"temperature": 1.0, "length": 2000, "seed": 2, "ban": [ban],
                             "dry_multiplier": 0.8})
    batch = Batch(lm.runner)
    batch.add([(gen, *lm.runner.prime(gen.ids))])
    seen = {}
    for _ in range(2000):
        pos = gen.tokens_out
        seen.setdefault(pos, (batch.logits.clone(), batch.state.z.clone(), gen.text,
                              gen.proc.extras.hist.clone(), gen.proc.extras.match.clone()))
        (tokens,) = batch.choose(1)
        for t in tokens:
            gen.emit(t)
        snap = gen.guard.rewind
        batch.advance([0])
        if snap is not None:
            logits, z, text, hist, match = seen[snap.position]
            assert gen.tokens_out == snap.position and gen.text == text
            assert torch.equal(batch.logits, logits) and torch.equal(batch.state.z, z)
            assert torch.equal(gen.proc.extras.hist, hist) and torch.equal(gen.proc.extras.match, match)
            return
    pytest.fail("the model never started the banned string")


def test_a_ban_of_every_character_is_refused_and_an_impossible_ban_ends_with_a_note(lm):
    tok = lm.tokenizer
    chars = sorted({tok.decode([i]) for i in range(tok.vocab_size) if i != tok.unk_id} - {""})
    assert len(chars) <= 64
    with pytest.raises(GhostwriteError, match="ban bans every character"):
        lm.complete("x", {"ban": chars[:32] if len(chars) <= 32 else chars[:32] + ["x"], "length": 5}) \
            if len(chars) <= 32 else Guard(tok, [], chars, [])
    # every character banned but "e", and "ee" banned too: an "e" can only be followed by a banned
    # string, so the rewinds come back to the first position and forbid it too. It ends (finish reason
    # stop, with a note), it does not hang
    g = lm.generate("x", {"length": 50, "seed": 1, "temperature": 1.0})
    g.guard = Guard(tok, [], [c for c in chars if c != "e"] + ["ee"], [])
    g.proc.in_python()
    text = "".join(g)
    assert text == "" and g.finish_reason == "stop" and "banned" in g.note


# ---- one seed, one text, on every path ------------------------------------------------------------------
NEW = [{"temperature": 0.9, "min_p": 0.05, "dry_multiplier": 0.8, "length": 300, "seed": 5},
       {"temperature": 1.1, "dry_multiplier": 1.5, "dry_allowed_length": 1, "bias": ["e=+1.5"], "length": 200,
        "seed": 6},
       {"temperature": 0, "dry_multiplier": 0.8, "length": 200},
       {"temperature": 0.9, "min_p": 0.1, "dry_multiplier": 0.8, "stop": ["\n\n"], "length": 400, "seed": 8}]


@pytest.mark.parametrize("int8", [True, False])
def test_same_seed_same_text_on_one_step_compiled_and_batched_paths(tiny_model, monkeypatch, int8):
    lm = generator.load("tiny", quantize=int8)
    real, served = lm.runner.run_chunk, []
    monkeypatch.setattr(lm.runner, "run_chunk", lambda *a, **k: served.append(real(*a, **k)) or served[-1])
    compiled = [lm.complete("KING:\n", s) for s in NEW]
    assert served and all(r is not None for r in served)  # the compiled loop wrote every token
    batched = ["".join(lm.serve("KING:\n", s)) for s in NEW]
    monkeypatch.setattr(lm.runner, "run_chunk", lambda *a, **k: None)  # the one-step path
    one_step = [lm.complete("KING:\n", s) for s in NEW]
    assert compiled == one_step == batched and all(compiled)
    plain = lm.complete("KING:\n", {k: v for k, v in NEW[0].items() if k not in ("min_p", "dry_multiplier")})
    assert plain != compiled[0]  # the samplers did something


def test_batched_rows_with_and_without_new_samplers_equal_alone():
    torch.manual_seed(0)
    V = 30
    kinds = [{}, {"min_p": 0.2}, {"dry_multiplier": 0.8}, {"temperature": 0}, {"top_k": 5, "dry_multiplier": 1}]
    mk = [lambda k=k: proc(V=V, **k) for k in kinds]
    alone, batch = [m() for m in mk], [m() for m in mk]
    for _ in range(80):
        logits = torch.randn(len(kinds), V) * 2
        want = [sample_rows(logits[i : i + 1].clone(), [alone[i]])[0] for i in range(len(kinds))]
        got = sample_rows(logits.clone(), batch)
        assert got == want
        for p, t in zip(alone + batch, want + got):
            p.observe(t)


# ---- defaults per tokenizer ---------------------------------------------------------------------------
def test_tokenizer_defaults_sit_under_the_cards_and_the_requests_own(tiny_model, tmp_path, monkeypatch):
    from bot.service import ContinuationService, Request
    from bot.store import Store
    from generator import registry
    from generator.generation.settings import TOKENIZER_DEFAULTS

    # (whatever the measured defaults are: a char default that is not the contract's)
    monkeypatch.setitem(TOKENIZER_DEFAULTS, "char", {"dry_multiplier": 0.8, "min_p": 0.02})
    store = Store(f"sqlite:///{tmp_path / 'd.db'}")
    svc = ContinuationService(store=store, default_model="tiny")
    try:
        char = TOKENIZER_DEFAULTS["char"]
        got = svc.prepare(Request("K", settings={"length": 5})).settings.to_dict()
        assert {k: got[k] for k in char} == char  # a char model's measured defaults
        mine = {k: SamplingSettings().to_dict()[k] for k in char}  # the contract's, set explicitly: they win
        got = svc.prepare(Request("K", settings={"length": 5, **mine})).settings.to_dict()
        assert {k: got[k] for k in char} == mine
        real = registry.read_card
        monkeypatch.setattr(registry, "read_card", lambda name, version: {
            **real(name, version), "style": {"defaults": {"dry_multiplier": 1.5}}})
        again = ContinuationService(store=store, default_model="tiny")  # (a service caches a card's defaults)
        got = again.prepare(Request("K", settings={"length": 5})).settings
        assert got.dry_multiplier == 1.5 and got.min_p == 0.02  # the card's own choice over the tokenizer's
        again.close()
    finally:
        svc.close()
        store.close()


# ---- style strength -------------------------------------------------------------------------------------
def test_style_strength_is_a_plus_s_times_a_minus_background(lm, tiny_model):
    from generator.generation.batch import Batch

    bg = generator.load("tiny", quantize=True).runner  # another network with the same tokenizer
    g = lm.generate("KING:\n", {"seed": 1, "length": 40, "temperature": 0.9})
    g.contrast(bg, 1.5)
    batch = Batch(lm.runner)
    batch.add([(g, *lm.runner.prime(g.ids))])
    logits, gone = batch._steer()
    own, back = batch.logits[0], bg.prime(g.ids)[0][0]
    fine = torch.isfinite(own)
    assert not gone and torch.allclose(logits[0][fine], (own + 1.5 * (own - back))[fine])
    assert torch.isneginf(logits[0][~fine]).all()  # the unknown token stays out
    same = lm.generate("KING:\n", {"seed": 1, "length": 40, "temperature": 0.9})
    same.contrast(lm.runner, 3.0)  # against itself: a − a = 0, the text of no style strength
    assert "".join(same) == lm.complete("KING:\n", {"seed": 1, "length": 40, "temperature": 0.9})


def test_style_strength_without_a_base_model_is_left_off_with_a_note(tiny_model, tmp_path):
    from bot.service import ContinuationService, Request
    from bot.store import Store

    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    with ContinuationService(store=store, default_model="tiny") as svc:
        r = svc.run(Request("K", settings={"length": 10, "style_strength": 1.0}))
        assert r.status == "complete" and len(r.text) == 10 and "fine-tuned" in r.note
    store.close()
