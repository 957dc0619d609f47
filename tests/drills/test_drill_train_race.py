"""Drill: two `train` runs of one name at once, the real processes (tests/test_run_lock.py has the quick
version with a process that only holds the lock).

A run trains; while it does, `train NAME`, `train NAME --resume` and `train NAME --tokenizer word` are each
refused in one line with exit code 2 and leave the run folder as it was; the run is killed with SIGKILL; a
`--resume` takes the run over at once and trains past the step it was killed at; while it does, a new
`train NAME` is refused again. Before the run lock, the second run re-prepared the folder under the first,
which then published its weights with the other's tokenizer.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from drillkit import env, report

from generator import checkpoint
from generator.errors import GhostwriteError

TRAIN = [sys.executable, "-m", "bot.cli", "train"]


def _args(corpus, steps, *extra):
    return [str(corpus), "--name", "race", "--preset", "tiny", "--max-steps", str(steps), "--batch-size", "8",
            "--seq-len", "32", "--checkpoint-every", "5", "--device", "cpu", "--threads", "1", "--quiet", *extra]


def _step(path) -> int:
    try:
        return checkpoint.load(path)[1]["progress"]["step"]
    except (GhostwriteError, KeyError):
        return -1


def _wait_for_step(proc, last, past: int, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        step = _step(last)
        if step > past:
            return step
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint past step {past} within {timeout} s")


def _refused(corpus, home, holder_pid: int, *extra) -> None:
    p = subprocess.run(TRAIN + _args(corpus, 50, *extra), env=env(home), capture_output=True, text=True, timeout=300)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert f"'race' is already being trained (process {holder_pid})" in lines[0], lines[0]


@pytest.mark.slow
def test_a_second_train_of_one_name_is_refused_and_a_killed_run_resumes(tiny_corpus, tmp_path):
    home = tmp_path / "home"
    folder, procs = home / "runs" / "race", []
    last = folder / "last.pt"

    def start(*extra):
        p = subprocess.Popen(TRAIN + _args(tiny_corpus, 1_000_000, *extra), env=env(home), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        procs.append(p)
        return p

    try:
        first = start()
        _wait_for_step(first, last, 0)
        prepared = {f: (folder / f).read_bytes() for f in ("run.json", "tokenizer.json", "train.bin", "val.bin")}
        for extra in ([], ["--resume"], ["--tokenizer", "word"]):
            _refused(tiny_corpus, home, first.pid, *extra)
        assert {f: (folder / f).read_bytes() for f in prepared} == prepared
        first.kill()
        first.wait()
        killed_at = _step(last)
        resumed = start("--resume")
        step = _wait_for_step(resumed, last, killed_at)
        _refused(tiny_corpus, home, resumed.pid)
        assert {f: (folder / f).read_bytes() for f in prepared} == prepared
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    report("train-race", refused=4, killed_at_step=killed_at, resumed_to_step=step)
