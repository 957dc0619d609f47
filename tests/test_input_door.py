"""Text that is not valid UTF-8 comes in by one door (bot.service.clean_text, applied where the service
validates a request): each undecodable byte becomes U+FFFD, the frontend says so, and what is printed is
what is stored. Before, such a prompt generated and then the insert raised UnicodeEncodeError: exit 1,
nothing printed, stored or spooled."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bot.service import ContinuationService, Request, clean_text
from bot.store import Store

GW = [sys.executable, "-m", "bot.cli"]


def _env(home, **extra):
    env = {**os.environ, "GHOSTWRITE_HOME": str(home), "GHOSTWRITE_THREADS": "1", **extra}
    env.pop("GHOSTWRITE_DATABASE_URL", None)
    return env


def _stored(gen_id: int):
    with Store() as store:
        return store.get(gen_id)


def test_clean_text_replaces_each_bad_byte_and_says_so():
    assert clean_text("plain text, ünïcödé 字") == ("plain text, ünïcödé 字", None)
    text, note = clean_text(b"caf\xe9 \xff!")  # Latin-1 bytes
    assert text == "caf\ufffd \ufffd!" and "2 undecodable bytes" in note and "U+FFFD" in note
    text, note = clean_text("a\udcffb")  # what Python makes of argv bytes
    assert text == "a\ufffdb" and "1 undecodable byte " in note
    assert clean_text("lone \ud800 high")[0] == "lone \ufffd high"  # a JSON "\ud800" escape
    text.encode("utf-8")


def test_argv_bytes_generate_print_and_store_the_same_text(tiny_model, session_home):
    p = subprocess.run(GW + ["generate", "tiny", b"The king\xff\xfe said", "--length", "20", "--seed", "3",
                             "--json"], env=_env(session_home), capture_output=True, timeout=300)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, err
    assert "Traceback" not in err
    assert "warning: the prompt was not valid UTF-8: 2 undecodable bytes replaced with U+FFFD" in err
    out = json.loads(p.stdout.decode("utf-8"))
    assert out["prompt"] == "The king\ufffd\ufffd said" and len(out["text"]) == 20
    row = _stored(out["id"])
    assert row.prompt == out["prompt"] and row.output == out["text"] and row.status == "complete"


def test_stdin_bytes_generate_print_and_store_the_same_text(tiny_model, session_home):
    # a strict decoder on stdin (what a en_US.UTF-8 locale gives) must not matter: the prompt is read as bytes
    env = _env(session_home, PYTHONIOENCODING="utf-8:strict")
    p = subprocess.run(GW + ["generate", "tiny", "-", "--length", "20", "--seed", "4"], input=b"It was\xe9 a dark\n",
                       env=env, capture_output=True, timeout=300)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, err
    assert "1 undecodable byte replaced with U+FFFD" in err and "Traceback" not in err
    printed = p.stdout.decode("utf-8").removesuffix("\n")
    assert len(printed) == 20
    with Store() as store:
        row = store.list_generations(source="cli", limit=1)[0]
    assert row.prompt == "It was\ufffd a dark\n" and row.output == printed


def test_piped_repl_bytes_continue_and_store(tiny_model, session_home):
    env = _env(session_home, PYTHONIOENCODING="utf-8:strict")
    with Store() as store:
        before = {g.id for g in store.list_generations(source="repl", limit=None)}
    p = subprocess.run(GW + ["repl", "tiny"], input=b"/set length 15\nThe queen\xff\xfe\n\nbad again \xc3(\n",
                       env=env, capture_output=True, timeout=300)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, err
    assert "Traceback" not in err and err.count("not valid UTF-8") == 2
    lines = p.stdout.decode("utf-8").split("\n")
    assert len(lines) == 4 and lines[-1] == "" and all(lines[:3])  # one line out per line in
    with Store() as store:
        rows = [g for g in store.list_generations(source="repl", limit=None) if g.id not in before][::-1]
    assert [r.prompt[:11] for r in rows] == ["The queen\ufffd\ufffd"[:11]] * 3
    assert rows[2].prompt.endswith("bad again \ufffd(") and all(r.status == "complete" for r in rows)


def test_the_service_door_covers_every_frontend(tiny_model):
    """Discord and any other caller hand the service str; a lone surrogate in it (a JSON "\\ud800" escape)
    is repaired at validation, noted on the request, and stored."""
    svc = ContinuationService()
    try:
        req = Request(prompt="Hark \ud800 who", model="tiny", settings={"length": 10, "seed": 1}, source="discord",
                      user_id="1")
        svc.validate(req)  # the Discord cog validates first, then streams: the note survives both
        result = svc.run(req)
    finally:
        svc.close()
    assert req.prompt == "Hark \ufffd who" and "1 undecodable byte" in req.input_note
    assert result.status == "complete" and result.store_error is None
    assert _stored(result.generation_id).prompt == "Hark \ufffd who"
