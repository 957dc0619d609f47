"""Batched serving: requests on one model advance together, one forward step per token for all of
them, join and leave as they come, and each one's text is the text it would have had alone."""

from __future__ import annotations

import threading
import time

import pytest

import generator
from generator.generation import engine as batching

SETTINGS = [
    {"temperature": 0, "length": 90},
    {"temperature": 1.0, "length": 90, "seed": 42},
    {"temperature": 0.7, "top_k": 5, "length": 60, "seed": 7},
    {"temperature": 1.1, "top_p": 0.8, "length": 70, "seed": 8},
    {"temperature": 0.9, "repetition_penalty": 1.3, "length": 50, "seed": 9},
    {"temperature": 0.8, "length": 4, "unit": "words", "seed": 10},
    {"temperature": 0.8, "length": 33, "unit": "tokens", "seed": 11},
]
PROMPTS = ["KING:\n", "QUEEN:\nO gentle night", "", "The sword of", "ROMEO:\nfair", "JULIET:\n", "x"]


@pytest.fixture(scope="module", params=["int8", "fp32"])
def lm(request, tiny_model):
    return generator.load("tiny", quantize=request.param == "int8")


def run_concurrently(lm, jobs, stagger=0.0):
    out = [None] * len(jobs)

    def work(i, prompt, settings):
        out[i] = "".join(lm.serve(prompt, settings))

    threads = []
    for i, (p, s) in enumerate(jobs):
        t = threading.Thread(target=work, args=(i, p, s))
        t.start()
        threads.append(t)
        if stagger:
            time.sleep(stagger)
    for t in threads:
        t.join(60)
    return out


def test_alone_batched_and_direct_give_the_same_text(lm):
    """Exact on the int8 path (integer sums, row by row); the fp32 path uses the same per-row
    arithmetic except BLAS, whose rounding may depend on the batch size, so it is checked greedy."""
    cases = list(zip(PROMPTS, SETTINGS))
    if not lm.int8:
        cases = [(p, s) for p, s in cases if s["temperature"] == 0] + [(p, {**s, "temperature": 0}) for p, s in cases[1:3]]
    direct = [lm.complete(p, s) for p, s in cases]
    alone = ["".join(lm.serve(p, s)) for p, s in cases]
    assert alone == direct
    others = [(f"QUEEN {i}:\n", {"seed": 100 + i, "length": 2000 + 90 * i, "temperature": 0.6 + 0.1 * i})
              for i in range(6)]
    engine = lm.engine()
    steps_before = engine.steps
    batched = run_concurrently(lm, cases + others, stagger=0.002)
    assert batched[: len(cases)] == direct
    assert engine.max_rows_seen >= 2
    produced = sum(len(t) for t in batched)  # char model: one token per character
    assert engine.steps - steps_before < produced  # one forward step served several requests


def test_both_paths_keep_the_same_books(lm):
    """generate and serve share one request's bookkeeping: same text, tokens in and out, seed (drawn when
    none is given and reported), for every unit, through the compiled loop and the Python choice."""
    cases = [("KING:\n", {"temperature": 0, "length": 3, "unit": "words"}),
             ("QUEEN:\nO", {"temperature": 0, "length": 2, "unit": "sentences", "top_k": 3}),
             ("x" * 5000, {"temperature": 0, "length": 40, "unit": "tokens", "repetition_penalty": 1.2}),
             ("The ", {"temperature": 0, "length": 1, "unit": "paragraphs"})]
    if lm.int8:
        cases += [(p, {**s, "temperature": 0.9, "seed": 4}) for p, s in cases]
    for prompt, s in cases:
        direct, served = lm.generate(prompt, s), lm.serve(prompt, s)
        assert "".join(direct) == direct.text == "".join(served) == served.text != ""
        assert direct.tokens_in == served.tokens_in == min(len(prompt), 4_000)  # the prompt's tail primes
        assert direct.tokens_out == served.tokens_out > 0
        assert isinstance(direct.seed, int) and isinstance(served.seed, int)
        assert (direct.seed == served.seed) == ("seed" in s)
    with pytest.raises(generator.GhostwriteError, match="prompt too long"):
        lm.serve("x" * 20_001, {})
    with pytest.raises(generator.GhostwriteError, match="temperature"):
        lm.generate("x", {"temperature": -1})


def test_a_paragraphs_newline_is_held_back_until_it_is_known_not_to_be_its_break(lm):
    """The paragraph cut falls before the break's first newline, which an earlier token wrote: it is held
    back, so the pieces read join to the text on both paths, with and without a guard (stop strings). A
    newline is favoured so that any tiny model ends its paragraph well inside the cap."""
    ended_early = 0
    for seed in range(4):
        for extra in ({}, {"stop": ["QQZQ"]}):
            s = {"unit": "paragraphs", "length": 1, "seed": seed, "bias": ["\n=2"], **extra}
            direct, served = lm.generate("The ", s), lm.serve("The ", s)
            pieces = list(direct), list(served)
            assert "".join(pieces[0]) == direct.text == "".join(pieces[1]) == served.text
            assert not direct.text.endswith("\n") and direct.tokens_out == served.tokens_out
            ended_early += direct.tokens_out < 3000 and "\n\n" not in direct.text.strip("\n")
            for g in (lm.generate("The ", s, logprobs=1), lm.serve("The ", s, logprobs=1)):
                assert "".join(g) == g.text == "".join(e[0] for e in g.logprobs)  # (no entry for a newline cut)
    assert ended_early >= 4  # most of them ended at their paragraph's break, not at the cap


def test_requests_join_and_leave_while_others_run(lm):
    long_settings = {"temperature": 0.9, "length": 20_000, "seed": 5}  # ~1 s: long enough to overlap
    want = lm.complete("KING:\n", long_settings)
    g = lm.serve("KING:\n", long_settings)
    got = [next(g)]
    # short requests come and go while the long one runs
    for i in range(5):
        short = run_concurrently(lm, [(f"Q{i}\n", {"length": 15 + i, "seed": i})] * 2)
        assert [len(t) for t in short] == [15 + i] * 2
        got.append(next(g, ""))
    got.extend(g)
    assert "".join(got) == want == g.text
    assert g.tokens_out == 20_000 and g.tokens_in == len("KING:\n")


def test_close_stops_and_keeps_what_was_read(lm):
    g = lm.serve("KING:\n", {"length": 5000, "seed": 3})
    first = next(g) + next(g)
    g.close()
    assert g.text == first and g.tokens_out == len(first)
    with pytest.raises(StopIteration):
        next(g)
    # the engine dropped it: a new request is served normally
    assert len(lm.complete("x", {"length": 10, "seed": 1})) == 10
    assert len("".join(lm.serve("x", {"length": 10, "seed": 1}))) == 10


def test_stepping_thread_ends_when_idle_and_restarts(lm, monkeypatch):
    monkeypatch.setattr(batching, "IDLE_EXIT_S", 0.05)
    engine = batching.BatchEngine(lm)
    assert len("".join(engine.submit("a", generator.SamplingSettings(length=5, seed=1)))) == 5
    deadline = time.time() + 10
    while engine._thread is not None and time.time() < deadline:
        time.sleep(0.02)
    assert engine._thread is None
    assert len("".join(engine.submit("b", generator.SamplingSettings(length=7, seed=1)))) == 7


def test_service_streams_go_through_the_engine(lm, tmp_path):
    from bot.service import ContinuationService, Request
    from bot.store import Store

    class OneModel(ContinuationService):
        def load_model(self, name, version):
            return lm

    svc = OneModel(store=Store(f"sqlite:///{tmp_path}/gw.db"))
    jobs = [(f"KING {i}:\n", {"temperature": 0 if not lm.int8 else 0.9, "length": 30 + i, "seed": i})
            for i in range(8)]
    results = [None] * len(jobs)

    def work(i):
        results[i] = svc.run(Request(prompt=jobs[i][0], settings=jobs[i][1]))

    steps_before = lm.engine().steps
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    for (prompt, s), r in zip(jobs, results):
        assert r.status == "complete" and r.text == lm.complete(prompt, r.settings)  # (with the model's defaults)
        assert {k: r.settings[k] for k in s} == s
        assert r.tokens_out == s["length"] and r.generation_id is not None
    assert lm.engine().steps > steps_before
    # cancelling a stream stores it as interrupted with what was produced
    cancel = threading.Event()
    stream = svc.stream(Request(prompt="KING:\n", settings={"length": 5000, "seed": 1}), cancel)
    seen = next(stream)
    cancel.set()
    rest = list(stream)
    assert stream.result.status == "interrupted" and stream.result.text == seen + "".join(rest)
    svc.close()
