"""A story's state carried over (issue 14, item 3): a turn primed from the state the story's last turn
left gives exactly the text a full re-prime of the whole story gives for the same seed; an edited story
(undo, retry, a changed word) is primed again; through the service, a Request with a story key."""

from __future__ import annotations

import pytest

S = {"length": 60, "unit": "tokens", "temperature": 0.9}


@pytest.fixture(scope="module")
def shared_text(tiny_corpus) -> str:
    text = tiny_corpus.read_text(encoding="utf-8")
    return text * (1 + 20_000 // max(1, len(text)))


def _turn(lm, story_key, text, seed):
    g = lm.serve(text, {**S, "seed": seed}, story=story_key)
    out = "".join(g)
    return out, g.fed, g.tokens_in


@pytest.mark.parametrize("int8", [True, False])
def test_turns_from_a_kept_state_write_what_a_full_reprime_writes(tiny_model, shared_text, int8):
    import generator

    lm = generator.load("tiny", quantize=int8)
    story = shared_text[:3000]
    for turn in range(4):
        cached, fed, n = _turn(lm, "s1", story, seed=turn)
        fresh, fed_fresh, _ = _turn(lm, f"fresh-{int8}-{turn}", story, seed=turn)  # nothing kept: all of it
        assert cached == fresh != "" and fed_fresh == n
        if turn:
            assert fed < n / 2  # only what the last turn and the writer added ran through the network
        story += cached + f" and then {turn}, "
    assert lm.stories.hits >= 3


def test_an_edited_story_is_primed_again_and_a_retry_reuses_its_state(tiny_model, shared_text):
    import generator

    lm = generator.load("tiny")
    a = shared_text[:2000]
    first, _, n = _turn(lm, "s2", a, 1)
    again, fed, _ = _turn(lm, "s2", a, 2)  # a retry: the same text
    assert fed == 0 and again == _turn(lm, "other", a, 2)[0]
    b = a + first + " more"
    _turn(lm, "s2", b, 3)
    edited = a[:1500] + "X" + a[1501:] + first  # a word changed in the middle: no kept state matches
    out, fed, n = _turn(lm, "s2", edited, 4)
    assert fed == n and out == _turn(lm, "other2", edited, 4)[0]
    undone, fed, n = _turn(lm, "s2", a, 5)  # undo back to an earlier turn: its state is still kept
    assert fed == 0 and undone == _turn(lm, "other3", a, 5)[0]


def test_a_story_is_not_cut_at_the_context_and_has_its_own_limit(tiny_model, shared_text):
    import generator
    from generator.errors import GhostwriteError
    from generator.generation.settings import CONTEXT_CHARS, MAX_PROMPT_CHARS, MAX_STORY_CHARS

    lm = generator.load("tiny")
    long = (shared_text * 3)[: CONTEXT_CHARS * 2]
    g = lm.serve(long, {**S, "seed": 1}, story="long")
    assert g.tokens_in == len(lm.tokenizer.encode(long)) > len(lm.tokenizer.encode(long[-CONTEXT_CHARS:]))
    assert lm.serve("x" * (MAX_PROMPT_CHARS + 1), S, story="big").tokens_in > MAX_PROMPT_CHARS
    with pytest.raises(GhostwriteError, match="story too long"):
        lm.serve("x" * (MAX_STORY_CHARS + 1), S, story="huge")


@pytest.mark.parametrize("kind", ["word", "sp"])
def test_other_tokenizers_match_a_full_reprime_too(tiny_models, shared_text, kind):
    """Appending text can change how the end of the story is tokenized (a word grows): the kept state is
    used only when its tokens are a prefix of the new ones, so the text is a full re-prime's either way."""
    import generator

    lm = generator.load(tiny_models[kind]["name"])
    story = shared_text[:1500]
    for turn in range(3):
        cached, _, _ = _turn(lm, "s", story, seed=turn)
        assert cached == _turn(lm, f"fresh{turn}", story, seed=turn)[0]
        story += cached + " then"


def test_through_the_service_a_story_key_carries_the_state_and_stores_the_tail(tiny_model, shared_text, tmp_path):
    from bot.service import CONTEXT_CHARS, ContinuationService, Request
    from bot.store import Store

    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    with ContinuationService(store=store, default_model="tiny") as svc:
        story = shared_text[: CONTEXT_CHARS + 3000]
        lm = svc.model("tiny")
        turns = []
        for turn in range(3):
            r = svc.run(Request(story, settings={**S, "seed": turn}, story="repl:t"))
            again = svc.run(Request(story, settings={**S, "seed": turn}, story=f"repl:fresh{turn}"))
            assert r.text == again.text != "" and r.tokens_in == len(lm.tokenizer.encode(story))
            turns.append((r, story))
            story += r.text + " so"
        assert lm.stories.hits >= 2
        last, sent = turns[-1]
        assert store.get(last.generation_id).prompt == sent[-CONTEXT_CHARS:]  # the row: the story's end
    store.close()
