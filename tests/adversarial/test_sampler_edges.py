"""The token choice on every path (one row, a batch, the compiled loop) is a token of the vocabulary
whatever the settings and the logits: NaN, ±inf, subnormal, all masked; and every sampling value that
validation accepts generates through the service (`--top-p 1e-300` used to crash the sampler thread with
an IndexError and store an `error` row, `--temperature 1e-300` to index past the embedding table)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import generator
from generator.errors import GhostwriteError
from generator.generation import fastloop
from generator.generation.sampling import LogitsProcessor, sample_rows
from generator.generation.settings import SamplingSettings

RUNS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
TINY = 5e-324  # the smallest subnormal double
EDGE_FLOATS = [0.0, TINY, 1e-300, 1e-45, 1.1754943508222875e-38, 1e-38, 1e-7, 0.5, 1.0, 9.999999, 10.0]
LOGIT = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                  st.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1e-45, 3.4e38, -3.4e38]))


def accepted(**kw) -> SamplingSettings | None:
    try:
        return SamplingSettings.from_dict(kw)
    except GhostwriteError:
        return None


SETTINGS = st.builds(
    lambda t, k, p, r, seed: accepted(temperature=t, top_k=k, top_p=p, repetition_penalty=r, seed=seed),
    st.one_of(st.sampled_from(EDGE_FLOATS), st.floats(0, 10)),
    st.one_of(st.sampled_from([0, 1, 2, 10**30]), st.integers(0, 80)),
    st.one_of(st.sampled_from([TINY, 1e-300, 1e-40, 0.5, 1.0]), st.floats(0, 1)),
    st.one_of(st.sampled_from([TINY, 1e-300, 1e-40, 1.0, 10.0]), st.floats(0, 10)),
    st.integers(0, 2**63 - 1),
).filter(lambda s: s is not None)


@settings(max_examples=60, **RUNS)
@given(data=st.data(), cases=st.lists(SETTINGS, min_size=1, max_size=4))
def test_every_choice_is_in_the_vocabulary(data, cases):
    V = data.draw(st.integers(1, 40))
    rows = torch.tensor([data.draw(st.lists(LOGIT, min_size=V, max_size=V)) for _ in cases], dtype=torch.float32)
    procs = [LogitsProcessor(s, V) for s in cases]
    for p in procs[:1]:  # seen tokens, so the repetition penalty has something to act on
        p.observe(0)
    for _ in range(3):
        picked = sample_rows(rows.clone(), procs)
        assert all(0 <= t < V for t in picked), picked
        alone = [sample_rows(rows[i:i + 1].clone(), [LogitsProcessor(s, V)])[0] for i, s in enumerate(cases)]
        assert all(0 <= t < V for t in alone), alone
        for r, t in enumerate(picked):
            finite = torch.isfinite(rows[r])
            if finite.any() and not torch.isnan(rows[r]).any() and not torch.isposinf(rows[r]).any():
                assert finite[t], (rows[r], t)  # never a masked (-inf) token while another is possible
            procs[r].observe(t)


@settings(max_examples=40, **RUNS)
@given(data=st.data())
def test_the_compiled_choice_is_in_the_vocabulary(data):
    """`fastloop._choose` (run inside the TorchScript loop) on any logits, temperature and uniform."""
    V = data.draw(st.integers(1, 30))
    n = data.draw(st.integers(1, 4))
    rows = torch.tensor([data.draw(st.lists(LOGIT, min_size=V, max_size=V)) for _ in range(n)], dtype=torch.float32)
    temps = torch.tensor([[max(data.draw(st.sampled_from(EDGE_FLOATS[1:])), 1.1754943508222875e-38)]
                          for _ in range(n)])
    greedy = torch.tensor([data.draw(st.booleans()) for _ in range(n)])
    u = torch.tensor([data.draw(st.floats(0, 1, exclude_max=True, width=32)) for _ in range(n)])
    mins = [data.draw(st.sampled_from([0.0, 1e-300, 0.05, 0.5, 1.0])) for _ in range(n)]  # min-p, in the loop too
    minlog = torch.tensor([[math.log(m) if m > 0 else float("-inf")] for m in mins])
    j = fastloop._choose(rows, temps, greedy, u, minlog, any(m > 0 for m in mins))
    assert ((0 <= j) & (j < V)).all(), (rows, temps, u, j)


def test_a_row_that_overflows_takes_its_most_likely_token():
    """Logits divided by a 1e-300 temperature overflow (inf - inf = NaN in the softmax): the limit of a
    temperature going to 0 is greedy, on the Python path and in the compiled loop alike."""
    logits = torch.tensor([[0.5, 3.0, float("-inf"), 2.9, -1.0]])
    for t in (1e-300, TINY, 1e-40):
        proc = LogitsProcessor(SamplingSettings(temperature=t, seed=1), 5)
        assert [sample_rows(logits.clone(), [proc])[0] for _ in range(20)] == [1] * 20
        both = torch.cat([logits, logits])
        assert sample_rows(both.clone(), [proc, LogitsProcessor(SamplingSettings(temperature=t, seed=2), 5)]) == [1, 1]
        j = fastloop._choose(logits, proc.temp, torch.tensor([False]), torch.tensor([0.999]), proc.extras.minlog, False)
        assert j.tolist() == [1]
    nan = torch.full((1, 5), float("nan"))
    assert 0 <= sample_rows(nan, [LogitsProcessor(SamplingSettings(temperature=1.0, seed=1), 5)])[0] < 5
    assert 0 <= sample_rows(nan, [LogitsProcessor(SamplingSettings(top_p=0.5, seed=1), 5)])[0] < 5


def test_top_p_that_rounds_to_zero_keeps_the_most_likely_token():
    logits = torch.tensor([[0.1, 2.0, 1.0, float("-inf")]])
    for p in (1e-300, TINY, 1e-46):
        proc = LogitsProcessor(SamplingSettings(top_p=p, temperature=1.5, seed=3), 4)
        assert {sample_rows(logits.clone(), [proc])[0] for _ in range(30)} == {1}


@pytest.fixture(scope="module")
def lm(tiny_model):
    return generator.load("tiny")


DEGENERATE = [{"top_p": 1e-300}, {"top_p": TINY}, {"temperature": 1e-300}, {"temperature": TINY},
              {"temperature": 1e-40}, {"repetition_penalty": 1e-300}, {"repetition_penalty": TINY},
              {"repetition_penalty": TINY, "temperature": 1e-300}, {"temperature": 1e-300, "top_k": 2},
              {"top_p": TINY, "temperature": TINY, "top_k": 3}, {"temperature": 0, "repetition_penalty": TINY},
              {"repetition_penalty": 10.0, "temperature": 10.0}, {"top_k": 10**30}]


@pytest.mark.parametrize("extra", DEGENERATE, ids=lambda d: ",".join(f"{k}={v:g}" for k, v in d.items()))
def test_every_accepted_value_generates_on_every_path(lm, extra, monkeypatch):
    s = {"length": 40, "unit": "chars", "seed": 5, **extra}
    prompt = "ROMEO:\nΩ 🙂 "  # characters the model never saw: the unknown token is among the seen ones
    batched = "".join(lm.serve(prompt, s))
    alone = lm.complete(prompt, s)
    assert len(batched) == len(alone) == 40 and batched == alone
    monkeypatch.setenv("GHOSTWRITE_TORCHSCRIPT", "0")  # the one-token-per-call path
    assert lm.complete(prompt, s) == alone
    if math.isclose(extra.get("temperature", 1), 0, abs_tol=1e-30) and len(extra) == 1:
        assert alone == lm.complete(prompt, {**s, "temperature": 0})  # an overflowed row is greedy


def test_an_overflowing_row_with_a_penalty_keeps_away_from_masked_tokens():
    """Found by the property above: a row with a repetition penalty (the general path) divided by a
    5e-324 temperature overflowed to all -inf, and the fallback then took token 0, the masked one."""
    row = torch.tensor([[float("-inf"), -10.0, -20.0]])
    for extra in ({}, {"top_k": 2}, {"top_p": 0.5}):
        proc = LogitsProcessor(SamplingSettings(temperature=TINY, repetition_penalty=2.0, seed=0, **extra), 3)
        assert sample_rows(row.clone(), [proc])[0] == 1, extra
