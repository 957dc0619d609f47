"""Token log-probabilities for an API's `logprobs` (issue 13): asked for, each token comes with its own
log-probability and the likeliest alternatives, on both generation paths, without changing the text."""

from __future__ import annotations

import math

import pytest


@pytest.fixture(scope="module")
def lm(tiny_model):
    import generator

    return generator.load("tiny")


@pytest.mark.parametrize("path", ["serve", "generate"])
def test_logprobs_leave_the_text_alone_and_cover_every_token(lm, path):
    settings = {"length": 40, "seed": 3, "temperature": 0.9}
    plain = getattr(lm, path)("ROMEO:", settings)
    text = "".join(plain)
    g = getattr(lm, path)("ROMEO:", settings, logprobs=3)
    assert "".join(g) == text
    assert len(g.logprobs) == g.tokens_out == plain.tokens_out
    assert "".join(piece for piece, _, _ in g.logprobs) == text
    for _piece, lp, top in g.logprobs:
        assert len(top) == 3
        values = [v for _, v in top]
        assert values == sorted(values, reverse=True)
        assert lp <= values[0] + 1e-6 and lp <= 0 and math.isfinite(lp)
        assert sum(math.exp(v) for v in values) <= 1 + 1e-5


def test_greedy_with_logprobs_picks_the_top_alternative(lm):
    g = lm.serve("ROMEO:", {"length": 20, "temperature": 0}, logprobs=1)
    "".join(g)
    for _piece, lp, top in g.logprobs:
        assert top[0][1] == pytest.approx(lp)


def test_without_logprobs_nothing_is_kept(lm):
    g = lm.serve("ROMEO:", {"length": 5, "seed": 1})
    "".join(g)
    assert g.logprobs is None


@pytest.mark.parametrize("extra", [{"stop": ["e", "a"]}, {"ban": ["e"]}, {"stop": ["\n"], "ban": ["th"]}])
def test_logprobs_follow_stop_strings_and_rewinds(lm, extra):
    """A stop string's tokens are not listed, a banned string's rewound tokens go, and text held back
    (it may still begin a stop or banned string) is still one entry a token: the entries join to the text."""
    from generator.generation.settings import BY_NAME

    if not set(extra) <= set(BY_NAME):
        pytest.skip("the settings contract has no stop or banned strings yet")
    g = lm.serve("ROMEO:", {"length": 300, "seed": 6, **extra}, logprobs=2)
    text = "".join(g)
    assert "".join(piece for piece, _, _ in g.logprobs) == text
    assert all(len(piece) == 1 for piece, _, _ in g.logprobs)  # a character model: one character a token
