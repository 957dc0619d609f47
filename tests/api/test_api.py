"""`ghostwrite serve` (issue 13): the OpenAI-compatible completions API on a real server on 127.0.0.1.
The official `openai` client lists the models and streams; SSE ends with [DONE]; settings go through the
contract (400 with its message), unknown models 404, big bodies 413 — each with an OpenAI-shaped error and
nothing stored; a client that leaves mid-stream leaves an `interrupted` row; logprobs, echo, n, stop.
Keys, limits, CORS and the command itself: test_api_guard.py."""

from __future__ import annotations

import json

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
from apiserver import assert_openai_error, rows, wait_for  # noqa: E402


def test_openai_client_lists_models_and_streams(base, svc):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    ids = [m.id for m in client.models.list().data]
    assert "tiny" in ids and "tiny@v1" in ids
    before = len(rows(svc))
    pieces, finish = [], None
    for chunk in client.completions.create(model="tiny", prompt="ROMEO:", max_tokens=30, temperature=0.7,
                                           seed=5, stream=True, user="alice"):
        for c in chunk.choices:
            pieces.append(c.text)
            finish = c.finish_reason or finish
    text = "".join(pieces)
    assert len(pieces) >= 2 and finish == "length"
    new = wait_for(lambda: rows(svc)[: len(rows(svc)) - before])
    row = new[0]
    assert row.output == text and row.prompt == "ROMEO:" and row.status == "complete"
    assert row.user_id == "alice" and row.tokens_out == 30 and row.params["seed"] == 5
    # the same seed, not streamed, gives the same text (and says so in OpenAI's shape)
    again = client.completions.create(model="tiny", prompt="ROMEO:", max_tokens=30, temperature=0.7, seed=5)
    assert again.choices[0].text == text and again.choices[0].finish_reason == "length"
    assert again.usage.completion_tokens == 30


def test_sse_ends_with_done_and_ghostwrite_settings_pass_through(base, svc):
    body = {"model": "tiny@v1", "prompt": "To be", "stream": True, "length": 3, "unit": "words", "top_k": 5,
            "min_p": 0.05, "seed": 2, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", base + "/v1/completions", json=body, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(ln[6:]) for ln in lines[:-1]]
    assert events[-1]["usage"]["completion_tokens"] > 0 and events[-1]["choices"] == []
    text = "".join(c["text"] for e in events for c in e["choices"])
    assert len(text.split()) == 3
    row = rows(svc)[0]
    assert row.output == text and row.params["top_k"] == 5 and row.params["unit"] == "words"


def test_logprobs_echo_and_n(base):
    r = httpx.post(base + "/v1/completions", json={"model": "tiny", "prompt": "ROMEO:", "max_tokens": 12,
                                                   "logprobs": 3, "echo": True, "n": 2, "seed": 9}, timeout=60)
    assert r.status_code == 200, r.text
    choices = r.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    assert choices[0]["text"] != choices[1]["text"]  # seed 9 and 10
    for c in choices:
        assert c["text"].startswith("ROMEO:")
        lp = c["logprobs"]
        assert "".join(lp["tokens"]) == c["text"][len("ROMEO:"):]
        assert len(lp["tokens"]) == 12 and all(len(t) == 3 for t in lp["top_logprobs"])
        assert lp["text_offset"][0] == len("ROMEO:")
        assert all(v <= 0 for v in lp["token_logprobs"])
    # streamed: the logprobs of the chunks cover the text exactly
    body = {"model": "tiny", "prompt": "ROMEO:", "max_tokens": 40, "logprobs": 2, "stream": True, "seed": 1}
    with httpx.stream("POST", base + "/v1/completions", json=body, timeout=60) as s:
        events = [json.loads(ln[6:]) for ln in s.iter_lines() if ln and ln != "data: [DONE]"]
    text = "".join(c["text"] for e in events for c in e["choices"])
    tokens = [t for e in events for c in e["choices"] if c["logprobs"] for t in c["logprobs"]["tokens"]]
    assert "".join(tokens) == text and len(tokens) == 40


def test_bad_inputs_are_openai_errors_and_store_nothing(base, svc):
    before = len(rows(svc))
    post = lambda body, **kw: httpx.post(base + "/v1/completions", timeout=60, **({"json": body} | kw))  # noqa: E731
    e = assert_openai_error(post({"model": "nosuch", "prompt": "x"}), 404, "unknown model")
    assert e["code"] == "model_not_found"
    assert_openai_error(post({"model": "tiny", "prompt": "x", "temperature": -1}), 400,
                        "temperature must be between 0 and 10")
    assert_openai_error(post({"model": "tiny", "prompt": "x", "max_tokens": 10**9}), 400, "length must be")
    assert_openai_error(post({"model": "tiny", "prompt": "x", "temprature": 1}), 400, "unknown sampling setting")
    assert_openai_error(post({"model": "tiny", "prompt": [1, 2]}), 400, "prompt")
    assert_openai_error(post({"model": "tiny", "prompt": "x", "n": 0}), 400, "n must be")
    assert_openai_error(post({"model": "tiny", "prompt": "x" * 20_001}), 400, "prompt too long")
    assert_openai_error(post(None, content=b"{nope", headers={"content-type": "application/json"}), 400, "JSON")
    big = json.dumps({"model": "tiny", "prompt": "x" * 10_000_000}).encode()
    assert_openai_error(post(None, content=big, headers={"content-type": "application/json"}), 413, "limit")
    assert_openai_error(httpx.get(base + "/v1/models/nosuch"), 404, "unknown model")
    assert_openai_error(httpx.get(base + "/v1/nothing-here"), 404)
    assert len(rows(svc)) == before


def test_client_leaving_mid_stream_stores_interrupted(base, svc, held):
    body = {"model": "tiny", "prompt": "ROMEO:", "stream": True, "length": 20_000, "unit": "chars",
            "user": "leaver"}
    got = ""
    with httpx.stream("POST", base + "/v1/completions", json=body, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                got += "".join(c["text"] for c in json.loads(line[6:])["choices"])
                break  # the client leaves while the generation is held (running)
    row = wait_for(lambda: [g for g in rows(svc, user_id="leaver") if g.status != "running"])[0]
    assert row.status == "interrupted" and row.finish_reason == "interrupted"
    assert got and row.output.startswith(got) and len(row.output) < 20_000


def test_page_settings_health_and_docs(base):
    page = httpx.get(base + "/")
    assert page.status_code == 200 and "<textarea" in page.text
    s = httpx.get(base + "/v1/settings").json()
    from bot.service import SETTINGS

    assert set(s["settings"]["properties"]) == {x.name for x in SETTINGS}
    assert set(s["request"]["properties"]) >= {"prompt", "max_tokens", "logprobs"} | {x.name for x in SETTINGS}
    assert httpx.get(base + "/health").json() == {"status": "ok"}
    spec = httpx.get(base + "/openapi.json").json()
    assert "/v1/completions" in spec["paths"] and httpx.get(base + "/docs").status_code == 200


def test_stop_strings_end_the_text_with_finish_reason_stop(base, svc):
    from bot.service import SETTINGS

    if "stop" not in {s.name for s in SETTINGS}:
        pytest.skip("the settings contract has no stop strings yet")
    body = {"model": "tiny", "prompt": "ROMEO:", "length": 2000, "stop": "e", "seed": 3}
    r = httpx.post(base + "/v1/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop" and "e" not in choice["text"] and len(choice["text"]) < 2000
    assert svc.generation(choice["generation_id"]).finish_reason == "stop"
    with httpx.stream("POST", base + "/v1/completions", json={**body, "stop": ["e", "a"], "stream": True},
                      timeout=60) as s:
        events = [json.loads(ln[6:]) for ln in s.iter_lines() if ln.startswith("data: {")]
    text = "".join(c["text"] for e in events for c in e["choices"])
    assert events[-1]["choices"][0]["finish_reason"] == "stop" and not set(text) & {"a", "e"}


def test_streamed_choices_each_end_with_their_finish_reason(base, svc):
    body = {"model": "tiny", "prompt": ["ROMEO:", "JULIET:"], "n": 2, "max_tokens": 25, "seed": 4, "stream": True}
    with httpx.stream("POST", base + "/v1/completions", json=body, timeout=60) as r:
        events = [json.loads(ln[6:]) for ln in r.iter_lines() if ln.startswith("data: {")]
    texts, finish = {}, {}
    for e in events:
        for c in e["choices"]:
            texts[c["index"]] = texts.get(c["index"], "") + c["text"]
            if c["finish_reason"]:
                finish[c["index"]] = c["finish_reason"]
    assert sorted(texts) == [0, 1, 2, 3] and finish == {i: "length" for i in range(4)}
    stored = rows(svc)[:4]
    assert sorted(g.output for g in stored) == sorted(texts.values())
    assert sorted((g.prompt, g.params["seed"]) for g in stored) == [
        ("JULIET:", 4), ("JULIET:", 5), ("ROMEO:", 4), ("ROMEO:", 5)]
    by = {(g.prompt, g.params["seed"]): g.output for g in stored}  # index = prompt × n + i
    assert [texts[i] for i in range(4)] == [by["ROMEO:", 4], by["ROMEO:", 5], by["JULIET:", 4], by["JULIET:", 5]]


def test_client_leaving_a_whole_answer_stores_interrupted(base, svc, held):
    """Not streamed: a client that gives up (a timeout) stops the generation too."""
    body = {"model": "tiny", "prompt": "ROMEO:", "length": 20_000, "user": "impatient"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(base + "/v1/completions", json=body, timeout=httpx.Timeout(60, read=1.0))
    row = wait_for(lambda: [g for g in rows(svc, user_id="impatient") if g.status != "running"])[0]
    assert row.status == "interrupted" and len(row.output) < 20_000


@pytest.mark.parametrize("stream", [False, True])
def test_nothing_storable_is_a_503_before_any_text(base, svc, stream, monkeypatch):
    from bot.service import GhostwriteError

    def refuse():
        raise GhostwriteError("nothing can be stored, so nothing was generated: disk full")

    monkeypatch.setattr(svc, "check_storable", refuse)
    before = len(rows(svc))
    r = httpx.post(base + "/v1/completions", json={"model": "tiny", "prompt": "x", "stream": stream}, timeout=60)
    err = assert_openai_error(r, 503, "nothing can be stored")
    assert err["type"] == "server_error"
    assert len(rows(svc)) == before


@pytest.mark.parametrize("extra", [{"stop": ["e", "a"]}, {"ban": ["e"]}, {"stop": ["\n"], "ban": ["th"]}])
def test_logprobs_join_to_the_text_with_stop_and_banned_strings(base, extra):
    from bot.service import SETTINGS

    if not {"stop", "ban"} <= {s.name for s in SETTINGS}:
        pytest.skip("the settings contract has no stop or banned strings yet")
    body = {"model": "tiny", "prompt": "ROMEO:", "length": 300, "logprobs": 2, "seed": 6, **extra}
    whole = httpx.post(base + "/v1/completions", json=body, timeout=60).json()["choices"][0]
    assert "".join(whole["logprobs"]["tokens"]) == whole["text"]
    assert len(whole["logprobs"]["tokens"]) == len(whole["logprobs"]["top_logprobs"])
    # a character model: one character a token, none held back or rewound into an empty or joined entry
    assert all(len(t) == 1 for t in whole["logprobs"]["tokens"])
    with httpx.stream("POST", base + "/v1/completions", json={**body, "stream": True}, timeout=60) as r:
        events = [json.loads(ln[6:]) for ln in r.iter_lines() if ln.startswith("data: {")]
    text = "".join(c["text"] for e in events for c in e["choices"])
    tokens = [t for e in events for c in e["choices"] if c["logprobs"] for t in c["logprobs"]["tokens"]]
    assert text == whole["text"] and "".join(tokens) == text and all(len(t) == 1 for t in tokens)


def test_a_story_key_takes_the_whole_story_and_writes_what_a_full_prime_writes(base, svc, monkeypatch):
    """What a story key guarantees: each turn writes what priming the whole story afresh writes for the same
    seed, and only the text added since the last turn runs through the network. (Not that turns differ: a
    barely trained model may well write the same text after 25,000 repeated characters.)"""
    long = ("ROMEO:\nBut soft, what light through yonder window breaks?\n" * 500)[:25_000]
    post = lambda body: httpx.post(base + "/v1/completions", json=body, timeout=60)  # noqa: E731
    assert_openai_error(post({"model": "tiny", "prompt": long, "max_tokens": 5}), 400, "prompt too long")
    stories, fed = svc.model("tiny").stories, []
    prime = stories.prime

    def counted(*args):  # (logits, state, tokens fed)
        got = prime(*args)
        fed.append(got[2])
        return got

    monkeypatch.setattr(stories, "prime", counted)
    text = added = long
    for turn in range(3):  # the story grows turn by turn
        body = {"model": "tiny", "prompt": text, "max_tokens": 20, "seed": 3}
        r = post({**body, "story": "s1"})
        assert r.status_code == 200, r.text
        out = r.json()["choices"][0]["text"]
        assert fed[-1] == len(added)  # a char model: one token a character; only what is new was fed
        full = post({**body, "story": f"fresh-{turn}"})  # a story never seen: all of its text primes
        assert fed[-1] == len(text) and full.json()["choices"][0]["text"] == out
        added = out + "\nJULIET:\n"
        text += added
    row = svc.generation(r.json()["choices"][0]["generation_id"])
    assert len(row.prompt) == svc.story_context_chars  # (a story's row keeps the end a prompt primes)
    # the same story text without the key, on a fresh stretch: the same continuation as a full prime
    short = "KING:\nWhat news?\n"
    a = post({"model": "tiny", "prompt": short, "max_tokens": 20, "seed": 8, "story": "s2"}).json()
    b = post({"model": "tiny", "prompt": short, "max_tokens": 20, "seed": 8}).json()
    assert a["choices"][0]["text"] == b["choices"][0]["text"]
    assert_openai_error(post({"model": "tiny", "prompt": "x", "story": ""}), 400, "story must be")
    assert_openai_error(post({"model": "tiny", "prompt": "x", "story": 7}), 400, "story must be")
