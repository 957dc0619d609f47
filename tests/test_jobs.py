"""Retraining jobs: one at a time, in a subprocess, recorded, cancellable; success publishes a version."""

from __future__ import annotations

import time

import pytest

from bot.service.jobs import JobRunner
from bot.store import Store
from generator import registry
from generator.errors import GhostwriteError


@pytest.fixture
def runner(fresh_home, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'jobs.db'}")
    r = JobRunner(store, threads=1, poll_s=0.2)
    yield r
    r.shutdown()
    store.close()


def test_fresh_then_fine_tune_then_cancel(runner, tiny_corpus):
    run1 = runner.submit("jobm", str(tiny_corpus), base="fresh", max_time=4, requested_by="admin")
    with pytest.raises(GhostwriteError, match="already running"):
        runner.submit("jobm", str(tiny_corpus), max_time=4)
    st = runner.wait(run1, timeout=120)
    assert st["status"] == "complete", st
    assert st["new_version"] == 1 and st["val_bpc"] > 0 and st["requested_by"] == "admin"
    assert registry.resolve("jobm") == ("jobm", 1)

    run2 = runner.submit("jobm", str(tiny_corpus), max_time=3)  # fine-tunes v1 by default
    st2 = runner.wait(run2, timeout=120)
    assert st2["status"] == "complete" and st2["base_model"] == "jobm" and st2["base_version"] == 1
    assert registry.resolve("jobm") == ("jobm", 2)

    run3 = runner.submit("jobm", str(tiny_corpus), max_time=120)
    deadline = time.time() + 60
    while time.time() < deadline and not (runner.status(run3).get("progress") or {}).get("step"):
        time.sleep(0.2)
    assert runner.cancel(run3)
    st3 = runner.status(run3)
    assert st3["status"] == "cancelled"
    assert registry.resolve("jobm") == ("jobm", 2)  # the old version keeps serving
    assert runner.current() is None


@pytest.mark.parametrize("content,needle", [(b"", "empty"), (b"\x00\x01binary\xff", "byte")])
def test_bad_corpus_is_refused_and_nothing_queued(runner, tmp_path, content, needle):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    with pytest.raises(GhostwriteError, match=needle):
        runner.submit("jobm", str(bad), base="fresh")
    assert runner.store.list_training_runs() == []
