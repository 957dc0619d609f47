"""The REPL without a terminal: commands and story handling through a session with an injected console
(a fake service for the failure paths, the real one with the tiny model for the store), and piped mode
through the real `ghostwrite repl` command in a subprocess."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from bot.repl import commands
from bot.repl.session import ReplSession
from bot.repl.story import Story, escape_line, joiner, unescape_line
from bot.service import CONTEXT_CHARS, MAX_PROMPT_CHARS, MAX_STORY_CHARS, Result
from generator.errors import GhostwriteError

REPO = Path(__file__).resolve().parents[1]
GHOSTWRITE = REPO / ".venv" / "bin" / "ghostwrite"


# ---- a fake service ---------------------------------------------------------------------------------
class FakeStream:
    def __init__(self, svc, req, cancel):
        self.svc, self.req, self.cancel = svc, req, cancel
        self.result = None

    def __iter__(self):
        svc, text, status = self.svc, [], "complete"
        for i, piece in enumerate(svc.pieces):
            if svc.crash_at == i:
                raise RuntimeError("boom")
            text.append(piece)
            yield piece
            if svc.interrupt_at == i:
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            if svc.delay:
                time.sleep(svc.delay)
            if self.cancel.is_set():
                status = "interrupted"
                break
        svc.next_id += 1
        gid = None if svc.store_error else svc.next_id
        self.result = Result(gid, "".join(text), svc.status if status == "complete" else status,
                             "the model broke" if svc.status == "error" else None, "fake", svc.version,
                             3, len(text), 5, dict(self.req.settings), svc.store_error)


class FakeHistory:
    def __init__(self, gens=(), fail=None):
        self.gens, self.fail = list(gens), fail
        self.calls = []

    def __call__(self, **kw):
        self.calls.append(kw)
        if self.fail:
            raise GhostwriteError(self.fail)
        return self.gens


class FakeService:
    max_prompt_chars = MAX_PROMPT_CHARS
    story_context_chars = CONTEXT_CHARS
    max_story_chars = MAX_STORY_CHARS

    def __init__(self, pieces=("Once", " upon", " a time."), **kw):
        self.pieces = list(pieces)
        self.requests = []
        self.next_id = 100
        self.version = 1
        self.fail = kw.get("fail")
        self.status = kw.get("status", "complete")
        self.store_error = kw.get("store_error")
        self.crash_at = kw.get("crash_at")
        self.interrupt_at = kw.get("interrupt_at")
        self.delay = kw.get("delay", 0)
        self.history = kw.get("history") or FakeHistory()
        self.jobs = kw.get("jobs")
        self.card_defaults = kw.get("card_defaults") or {}

    # retraining: the service's calls, answered by a FakeRunner
    def retrain(self, model, corpus, base=None, max_time=None, requested_by=None):
        return self.jobs.submit(model, corpus, base=base, max_time=max_time, requested_by=requested_by)

    def job_status(self, run_id=None):
        return self.jobs.status(run_id)

    def current_job(self):
        return None if self.jobs is None else self.jobs.current()

    def cancel_job(self, run_id=None):
        return self.jobs.cancel(run_id)

    def resolve(self, spec):
        if spec in (None, "fake"):
            return "fake", self.version
        if spec == "fake@v1":
            return "fake", 1
        raise GhostwriteError(f"unknown model {spec!r} (models: fake)")

    def model_defaults(self, name, version):
        return dict(self.card_defaults)

    def models(self):
        return [{"name": "fake", "version": self.version, "tokenizer": {"kind": "char"}, "parameters": 10,
                 "val_bpc": 2.5, "corpus": "c", "created": "2026-01-01T00:00:00"}]

    def card(self, spec):
        name, version = self.resolve(spec)
        return {"name": name, "version": version, "corpus": "c", "tokenizer": {"kind": "char", "vocab_size": 9},
                "model": {"num_layers": 1, "hidden_size": 8}, "parameters": 10, "val_bpc": 2.5}

    def stream(self, req, cancel=None):
        self.requests.append(req)
        if self.fail:
            raise self.fail
        return FakeStream(self, req, cancel)


def make(svc=None, **kw):
    console = Console(file=io.StringIO(), width=100, color_system=None, force_terminal=False)
    s = ReplSession(svc or FakeService(), console, **kw)
    return s


def screen(s: ReplSession) -> str:
    text = s.console.file.getvalue()
    s.console.file.seek(0)
    s.console.file.truncate()
    return text


def one_line(s: ReplSession) -> str:
    out = screen(s).strip("\n")
    assert "\n" not in out and "Traceback" not in out, out
    return out


# ---- the story ----------------------------------------------------------------------------------------
def test_joiner_and_story_text():
    assert joiner("", "The") == ""
    assert joiner("The king", "said") == " "
    assert joiner("The king ", "said") == ""
    assert joiner("The king", ", said") == ""
    st = Story()
    st.add("The king").model = " spoke."
    st.add("Then").model = " silence"
    assert st.text() == "The king spoke. Then silence"
    assert st.tail(7) == "silence"
    assert st.to_text().endswith("\n")


def test_markdown_and_escaping():
    st = Story()
    t = st.add("# Title *not*")
    t.model = "\n- a list_item\nand more"
    md = st.to_markdown("fake@v1", "2026-01-01")
    assert md.startswith("*Written with ghostwrite (fake@v1), 2026-01-01.")
    assert "**\\# Title \\*not\\***" in md
    assert "\\- a list\\_item  \nand more" in md
    for text in ("a\nb", "back\\slash\\n", "\r\n\\\\"):
        assert "\n" not in escape_line(text) and unescape_line(escape_line(text)) == text


def test_stream_writer_wraps_at_words_on_a_terminal():
    import re

    from bot.repl.session import StreamWriter

    def render(text):
        console = Console(file=io.StringIO(), width=20, force_terminal=True, color_system="standard")
        w = StreamWriter(console)
        for ch in text:
            w.feed(ch)
        w.end()
        raw = console.file.getvalue()
        assert "\x1b[32m" in raw
        # What a terminal shows: "\r\x1b[K" redraws the line (a word moved down), colours aside.
        return [re.sub(r"\x1b\[[0-9;]*m", "", line.split("\r\x1b[K")[-1]) for line in raw.split("\n")]

    text = "the quick brown fox jumps over the lazy dog, then sleeps.\nend " * 2
    lines = render(text)
    assert all(len(line) <= 20 for line in lines), lines
    assert " ".join(" ".join(lines).split()) == " ".join(text.split())
    assert all(word in text.split() for line in lines for word in line.split()), lines
    lines = render("a supercalifragilisticexpialidocious word")
    assert all(len(line) <= 20 for line in lines) and "".join(lines).replace(" ", "") == \
        "asupercalifragilisticexpialidociousword"


# ---- commands ----------------------------------------------------------------------------------------
def test_unknown_and_ambiguous_commands_are_one_line_hints():
    s = make()
    commands.handle(s, "/frobnicate")
    assert "unknown command /frobnicate" in one_line(s)
    commands.handle(s, "/re")
    assert "could be" in one_line(s)
    commands.handle(s, "/he")  # a unique prefix
    assert "/set" in screen(s)


@pytest.mark.parametrize("line, expected", [
    ("/set temperature -1", "temperature must be between 0"),
    ("/set top_p 2", "top_p must be in (0, 1]"),
    ("/set top_k 1.5", "top_k must be a whole number"),
    ("/set penalty 0", "repetition_penalty must be in (0, 10]"),
    ("/set length 0", "length must be between 1 and 20,000 chars"),
    ("/set unit lines", "unit must be one of"),
    ("/set unit paragraphs", "set both, e.g. /set length 3 paragraphs"),
    ("/set seed abc", "seed must be a whole number"),
    ("/set colour red", "unknown setting 'colour'"),
    ("/set temperature", "usage: /set temperature VALUE"),
])
def test_bad_settings_get_one_line_and_change_nothing(line, expected):
    s = make()
    before = dict(s.settings)
    commands.handle(s, line)
    assert expected in one_line(s)
    assert s.settings == before


def test_set_values():
    s = make()
    for line in ("/set temperature 0.5", "/set top_k 40", "/set parameter top_p 0.9", "/set penalty 1.2",
                 "/set length 3 sentences", "/set seed 7"):
        commands.handle(s, line)
    assert s.settings == {"temperature": 0.5, "top_k": 40, "top_p": 0.9, "repetition_penalty": 1.2, "length": 3,
                          "unit": "sentences", "seed": 7}  # only what was set: the rest is the model's
    commands.handle(s, "/set seed random")
    commands.handle(s, "/set unit word")
    assert s.settings["seed"] is None and s.settings["unit"] == "words"
    screen(s)
    commands.handle(s, "/set")
    assert "length 3 words" in one_line(s)


def test_only_what_was_set_is_sent_over_the_models_defaults():
    """The service lays a request's settings over the model card's defaults (a style sweep's, the
    tokenizer's): the REPL sends only what /set changed, and /set shows what a generation uses."""
    svc = FakeService(card_defaults={"temperature": 0.6, "min_p": 0.05})
    s = make(svc)
    commands.handle(s, "Once")
    assert svc.requests[-1].settings == {}
    commands.handle(s, "/set")
    shown = screen(s)
    assert "temperature 0.6" in shown and "the model's defaults: temperature, min_p" in shown
    commands.handle(s, "/set temperature 0.8")  # the contract's own default, set explicitly: it is sent
    commands.handle(s, "/continue")
    assert svc.requests[-1].settings == {"temperature": 0.8}
    screen(s)
    commands.handle(s, "/set")
    shown = screen(s)
    assert "temperature 0.8" in shown and "the model's defaults: min_p" in shown
    commands.handle(s, "/set temp default")
    commands.handle(s, "/continue")
    assert svc.requests[-1].settings == {}


def test_story_turns_parents_continue_retry_undo():
    svc = FakeService()
    s = make(svc)
    commands.handle(s, "The king")
    assert s.story.text() == "The kingOnce upon a time."
    assert svc.requests[-1].prompt == "The king" and svc.requests[-1].parent_id is None
    assert svc.requests[-1].source == "repl"
    first = s.story.last.generation_id
    commands.handle(s, "And then")
    assert svc.requests[-1].prompt == "The kingOnce upon a time. And then"
    assert svc.requests[-1].parent_id == first
    second = s.story.last.generation_id
    commands.handle(s, "/retry")
    assert svc.requests[-1].prompt == "The kingOnce upon a time. And then"
    assert svc.requests[-1].parent_id == second  # the retry points at what it replaces
    assert s.story.text() == "The kingOnce upon a time. And thenOnce upon a time."
    assert s.story.last.generation_id != second
    commands.handle(s, "/continue")
    assert svc.requests[-1].prompt == s.story.text()[: -len("Once upon a time.")]
    assert len(s.story.turns) == 3
    commands.handle(s, "/undo")
    commands.handle(s, "/undo")
    assert s.story.text() == "The kingOnce upon a time."
    commands.handle(s, "/new")
    assert not s.story
    screen(s)
    for line in ("/undo", "/retry", "/continue"):
        commands.handle(s, line)
        assert one_line(s)
    assert len(svc.requests) == 4


def test_story_prompt_is_the_whole_story_under_the_sessions_key():
    """The service keeps the story's state under its key and feeds only what was added (issue 14): the
    REPL sends all of it, not its last CONTEXT_CHARS, up to the service's max_story_chars."""
    svc = FakeService(pieces=["x" * 3000])
    s = make(svc)
    commands.handle(s, "a" * 3000)
    commands.handle(s, "b")
    first, last = svc.requests[-2], svc.requests[-1]
    assert last.prompt == s.story.text()[: -3000] and len(last.prompt) == 6002 > CONTEXT_CHARS
    assert last.story == first.story == s.story_key and s.story_key.startswith("repl:")
    assert make(FakeService()).story_key != s.story_key
    svc.max_story_chars = 5000
    commands.handle(s, "c")
    assert len(svc.requests[-1].prompt) == 5000 and svc.requests[-1].prompt.endswith("x c")


def test_single_mode_each_prompt_stands_alone():
    svc = FakeService()
    s = make(svc, mode="single")
    commands.handle(s, "One")
    commands.handle(s, "Two")
    assert svc.requests[-1].prompt == "Two" and svc.requests[-1].parent_id is None
    commands.handle(s, "/mode story")
    commands.handle(s, "Three")
    assert svc.requests[-1].prompt == "TwoOnce upon a time. Three"


def test_a_megabyte_prompt_is_refused_with_the_limit():
    svc = FakeService()
    s = make(svc)
    commands.handle(s, "x" * 1_000_000)
    out = one_line(s)
    assert "1,000,000 characters" in out and "the limit is 20,000" in out
    assert not svc.requests and not s.story


def test_service_errors_are_one_line_and_the_session_goes_on():
    s = make(FakeService(fail=GhostwriteError("unknown model 'gone' (models: fake)")))
    commands.handle(s, "Hello")
    assert "error: unknown model 'gone'" in screen(s)
    assert not s.story
    s = make(FakeService(status="error"))
    commands.handle(s, "Hello")
    assert "error: the model broke" in screen(s) and not s.story
    s = make(FakeService(crash_at=1))
    commands.handle(s, "Hello")
    out = screen(s)
    assert "internal error: RuntimeError: boom" in out and "Traceback" not in out
    s = make(FakeService(store_error="database is locked (kept in unsaved-generations.jsonl)"))
    commands.handle(s, "Hello")
    out = screen(s)
    assert "not stored yet: database is locked" in out
    assert s.story.text() == "HelloOnce upon a time."  # the text is kept; the row is spooled


def test_ctrl_c_during_generation_keeps_the_partial_text():
    svc = FakeService(pieces=[f" w{i}" for i in range(200)], interrupt_at=2, delay=0.01)
    s = make(svc)
    commands.handle(s, "Start")
    turn = s.story.last
    assert turn.status == "interrupted"
    assert turn.model.startswith(" w0 w1 w2") and len(turn.model) < len(" w0") * 100
    assert "stopped" in screen(s)
    commands.handle(s, "/set length 10")  # still running
    assert "length 10" in screen(s)


def test_save_txt_and_md(tmp_path):
    s = make()
    commands.handle(s, "/save x.txt")
    assert "nothing to save" in one_line(s)
    commands.handle(s, "The king")
    screen(s)
    commands.handle(s, f"/save {tmp_path / 'story'}")
    assert (tmp_path / "story.txt").read_text() == "The kingOnce upon a time.\n"
    commands.handle(s, f"/save {tmp_path / 'sub' / 'story.md'}")
    md = (tmp_path / "sub" / "story.md").read_text()
    assert "**The king**Once upon a time." in md
    commands.handle(s, f"/save {tmp_path / 'story.pdf'}")
    assert "save as .txt or .md" in screen(s).splitlines()[-1]
    commands.handle(s, f"/save {tmp_path}")
    assert "is a folder" in one_line(s)


def test_history_show_models_model():
    from datetime import datetime

    from bot.store.records import Generation

    gen = Generation(id=7, created_at=datetime(2026, 1, 2, 3, 4), source="repl", user_id=None, user_name="me",
                     guild_id=None, channel_id=None, model="fake", model_version=1, prompt="The king",
                     output="spoke at last " + "and on " * 40, status="interrupted")
    store = FakeHistory([gen])
    s = make(FakeService(history=store))
    commands.handle(s, "/history 5")
    out = one_line(s)
    assert "#7" in out and "[interrupted]" in out and "spoke at last" in out
    assert out.endswith("…") and len(out) <= 100  # one line, cut to the width
    assert store.calls == [{"source": "repl", "limit": 5}]
    commands.handle(s, "/history x")
    assert "usage: /history [N]" in one_line(s)
    s = make(FakeService(history=FakeHistory(fail="the database is unreachable")))
    commands.handle(s, "/history")
    assert "the database is unreachable" in one_line(s)
    commands.handle(s, "/show")
    out = screen(s)
    assert "temperature 0.8" in out and "fake@v1" in out and "2.500 bits/char" in out
    commands.handle(s, "/models")
    assert "fake@v1" in screen(s)
    commands.handle(s, "/model nosuch")
    assert "unknown model 'nosuch'" in one_line(s)
    commands.handle(s, "/model fake@v1")
    assert s.model_spec == "fake@v1" and s.label == "fake@v1"


class FakeRunner:
    def __init__(self):
        self.submitted, self.cancelled, self.state = [], [], "running"

    def submit(self, model, corpus, base=None, max_time=None, requested_by=None):
        self.submitted.append((model, corpus, base, max_time, requested_by))
        return 3

    def status(self, run_id=None):
        return {"id": 3, "model": "fake", "corpus": "c", "status": self.state, "new_version": 2,
                "val_bpc": 2.1, "progress": {"step": 5, "total_steps": 10}, "error": None}

    def current(self):
        return 3 if self.state == "running" else None

    def cancel(self, run_id=None):
        self.cancelled.append(run_id)
        self.state = "cancelled"
        return True


def test_retrain_through_the_job_runner():
    runner = FakeRunner()
    s = make(FakeService(jobs=runner))
    commands.handle(s, "/retrain")
    assert "usage: /retrain" in one_line(s)
    commands.handle(s, "/retrain corpus.txt --max-time abc")
    assert "--max-time takes seconds" in one_line(s)
    commands.handle(s, "/retrain 'my corpus.txt' --fresh --max-time 30")
    assert runner.submitted == [("fake", "my corpus.txt", "fresh", 30.0, "repl")]
    assert "training run 3 started" in one_line(s)
    commands.handle(s, "/retrain status")
    assert "running, step 5/10" in one_line(s)
    commands.handle(s, "/quit")
    assert not s.done and "quit again" in one_line(s)
    runner.state = "complete"
    s.poll_jobs()
    assert "fake@v2 serves from now on" in one_line(s)
    commands.handle(s, "/quit")
    assert s.done and not runner.cancelled


# ---- the real service, in process --------------------------------------------------------------------
def test_real_service_story_rows(tiny_model):
    from bot.service import ContinuationService

    svc = ContinuationService()
    s = make(svc, model="tiny", settings={"length": 12, "seed": 1})
    commands.handle(s, "The king")
    commands.handle(s, "/continue")
    commands.handle(s, "/retry")
    ids = [t.generation_id for t in s.story.turns]
    rows = [svc.generation(i) for i in ids]
    assert all(r.source == "repl" and r.status == "complete" and r.model == "tiny" for r in rows)
    assert rows[0].prompt == "The king" and rows[0].output == s.story.turns[0].model
    assert rows[1].prompt == s.story.turns[0].text
    retried = svc.generation(rows[1].parent_id)  # the /continue that /retry replaced
    assert retried.prompt == rows[1].prompt and retried.parent_id == rows[0].id
    assert [g.id for g in svc.chain(rows[1].id)] == [rows[0].id, retried.id, rows[1].id]
    assert "seed is fixed" in screen(s)
    commands.handle(s, "/show")
    assert "tiny@v1" in screen(s)


def test_a_cards_default_reaches_a_repl_generation_unless_set(tiny_model, monkeypatch):
    from bot.service import ContinuationService
    from generator import registry

    real = registry.read_card  # a stand-in card reader: the shared tiny model's card is never rewritten
    monkeypatch.setattr(registry, "read_card", lambda name, version: {
        **real(name, version), "style": {"defaults": {"temperature": 0.35}}})
    svc = ContinuationService()
    try:
        s = make(svc, model="tiny", settings={"length": 12, "seed": 1})
        commands.handle(s, "The king")
        first = svc.generation(s.story.last.generation_id)
        assert first.params["temperature"] == 0.35  # the sweep's choice, stored with the row
        commands.handle(s, "/set")
        assert "temperature 0.35" in screen(s)
        commands.handle(s, "/set temperature 1.1")
        commands.handle(s, "/continue")
        assert svc.generation(s.story.last.generation_id).params["temperature"] == 1.1
    finally:
        svc.close()


def test_real_service_with_the_database_unreachable(tiny_model, session_home, tmp_path, monkeypatch):
    """The continuation still goes into the story; the row waits in the spool file and the REPL says so
    in one line (the same path in piped mode, on standard error)."""
    import json

    from bot.service import ContinuationService

    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(session_home / "models")
    monkeypatch.setenv("GHOSTWRITE_HOME", str(home))
    monkeypatch.setenv("GHOSTWRITE_DATABASE_URL", f"sqlite:///{tmp_path}/missing/ghostwrite.db")
    s = make(ContinuationService(), model="tiny", settings={"length": 20})
    commands.handle(s, "The king")
    out = screen(s)
    assert "not stored yet: cannot open the database" in out and "Traceback" not in out
    assert len(s.story.last.model) == 20 and s.story.last.generation_id is None
    commands.handle(s, "/history")
    assert "cannot open the database" in one_line(s)
    commands.handle(s, "/continue")  # goes on; its parent is unknown, so none
    spooled = [json.loads(p.read_text()) for p in sorted((home / "unsaved-generations").glob("*.json"))]
    assert [(r["source"], r["prompt"], r["status"], r["parent_id"]) for r in spooled] == [
        ("repl", "The king", "complete", None), ("repl", s.story.turns[0].text, "complete", None)]


# ---- piped mode: the real command ---------------------------------------------------------------------
def _run(args, stdin, timeout=60, **env_vars):
    env = dict(os.environ, GHOSTWRITE_THREADS="1", **env_vars)
    return subprocess.run([str(GHOSTWRITE), "repl", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def test_piped_one_line_per_prompt(tiny_model, tmp_path):
    from bot.store import Store

    store = Store()
    before = {g.id for g in store.list_generations(source="repl", limit=None)}
    lines = ["/set length 300", "/set unit paragraphs", "/set length 30", "The king", "", "/set temperature -1",
             "/nosuch", "x" * 1_000_000, "//slash", f"/save {tmp_path / 'piped.md'}"]
    p = _run(["tiny"], "\n".join(lines) + "\n")
    assert p.returncode == 0, p.stderr
    out = p.stdout.split("\n")
    assert out[-1] == "" and len(out) - 1 == 4, p.stdout  # 4 non-command lines in → 4 lines out
    assert out[0] and out[1] and out[2] == "" and out[3], (p.stdout[:500], p.stderr[-2000:])
    err = p.stderr
    assert "Traceback" not in err and "\x1b[" not in p.stdout + err
    assert "set both" in err and "temperature must be between 0" in err and "unknown command /nosuch" in err
    assert "the limit is 20,000" in err
    assert (tmp_path / "piped.md").exists()
    rows = [g for g in store.list_generations(source="repl", limit=None) if g.id not in before][::-1]
    assert len(rows) == 3 and all(r.status == "complete" and r.source == "repl" for r in rows)
    assert [unescape_line(line) for line in (out[0], out[1], out[3])] == [r.output for r in rows]
    assert rows[0].prompt == "The king"
    assert rows[1].prompt == "The king" + rows[0].output and rows[1].parent_id == rows[0].id
    assert rows[2].prompt.endswith("/slash") and rows[2].parent_id == rows[1].id
    assert all(len(r.output) == 30 for r in rows)


def test_piped_unknown_model_exits_2(tiny_model):
    p = _run(["nosuch"], "hello\n")
    assert p.returncode == 2 and p.stdout == ""
    assert "unknown model 'nosuch'" in p.stderr and len(p.stderr.strip().splitlines()) == 1



def test_how_a_continuation_ended_is_shown():
    """A stop string ends it (said in the status line); a ban that left nothing to write says so (issue 12)."""
    s = make(interactive=True)
    s._report(Result(7, "Once", "complete", None, "m", 1, 1, 4, 10, {}, finish_reason="stop"))
    assert "ended at a stop string" in screen(s)
    banned = Result(8, "", "complete", None, "m", 1, 1, 0, 10, {}, finish_reason="stop",
                    note="the banned strings left nothing the model could write here, so the text ends early")
    s._report(banned)
    assert "banned strings left nothing" in screen(s)
