"""A failure inside the batching engine fails the requests it was stepping, and the next request is
served: the piped REPL used to stop for good after a few failing generations (the engine's thread, still
alive while it printed its traceback, took the next request into a queue nobody would read again)."""

from __future__ import annotations

import io
import threading
import time

import pytest

import generator
from generator.generation import batch
from generator.generation.fastlstm import FastLSTM


def _broken(*args, **kwargs):
    raise RuntimeError("injected sampler failure")


def _within(seconds, fn):
    """fn() on a thread; its result, or a failure if it has not returned in time (a hang)."""
    box: list = []
    t = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    t.start()
    t.join(seconds)
    assert box, f"no answer within {seconds} s: a request is waiting forever"
    return box[0]


def test_requests_after_an_engine_failure_are_served(tiny_model, monkeypatch):
    lm = generator.load("tiny")
    monkeypatch.setattr(lm.runner, "run_chunk", _broken)
    # a thread that dies of an exception spends a while in threading.excepthook (printing its traceback)
    # while still alive: make that while long, so a request arriving then is not left to luck
    monkeypatch.setattr(threading, "excepthook", lambda args: time.sleep(0.5))

    def one():
        try:
            "".join(lm.serve("KING:\n", {"length": 20, "seed": 1}))
        except RuntimeError as e:
            return str(e)
        return "served"

    for _ in range(40):  # back to back, as a script feeds the piped REPL
        assert _within(20, one) == "injected sampler failure"
    monkeypatch.undo()
    assert len(_within(20, lambda: "".join(lm.serve("KING:\n", {"length": 20, "seed": 1})))) == 20


def test_piped_repl_reads_every_line_after_failures(tiny_model, monkeypatch, tmp_path):
    """Every line in gets its line out (empty for a failed one) and the REPL ends at the end of input."""
    from bot.repl import run_repl

    monkeypatch.setenv("GHOSTWRITE_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setattr(FastLSTM, "run_chunk", _broken)
    monkeypatch.setattr(batch, "sample_rows", _broken)
    monkeypatch.setattr(threading, "excepthook", lambda args: time.sleep(0.5))
    lines = [f"line {i}" for i in range(15)]
    out = io.StringIO()
    code = _within(120, lambda: run_repl("tiny", stdin=io.StringIO("\n".join(lines) + "\n"), stdout=out,
                                         interactive=False))
    assert code == 0
    assert out.getvalue().split("\n")[:-1] == [""] * len(lines)


@pytest.mark.parametrize("setting", ["top_p 1e-300", "temperature 5e-324", "penalty 1e-300"])
def test_piped_repl_generates_with_underflowing_settings(tiny_model, tmp_path, monkeypatch, setting):
    from bot.repl import run_repl

    monkeypatch.setenv("GHOSTWRITE_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    script = f"/set {setting}\n/set length 12\n" + "".join(f"prompt {i}\n" for i in range(6))
    out = io.StringIO()
    assert _within(120, lambda: run_repl("tiny", stdin=io.StringIO(script), stdout=out, interactive=False)) == 0
    got = out.getvalue().split("\n")[:-1]
    assert len(got) == 6 and all(got), got  # six continuations, none of them an error
