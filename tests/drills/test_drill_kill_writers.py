"""Drill (b): kill -9 the REPL and a service-writing process while they write to one SQLite file.

The REPL runs piped (`ghostwrite repl tiny`, one prompt per line in, one continuation per line out); the
other process runs generations on 3 threads through `ContinuationService` and prints each reply once the
service has returned it (what a bot does before it shows a reply). Both are killed with SIGKILL at random
moments while they write. Afterwards the database passes `PRAGMA integrity_check`, opens through the store,
and every reply that was shown (a whole line on standard output) is stored, with the same text.

Quick: one round. Slow (`make drills`): GHOSTWRITE_DRILL_ROUNDS rounds (default 8) on the same file.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from drillkit import GW, env, integrity, report

from bot.repl.story import unescape_line
from bot.store import Store

WRITER = r"""
import json, sys, threading
from bot.service import ContinuationService, Request
svc = ContinuationService(default_model="tiny", workers=3)
lock = threading.Lock()
def loop(t):
    i = 0
    while True:
        r = svc.run(Request(prompt=f"KING {t}.{i}:\n", settings={"length": 40, "seed": i}, source="discord",
                            user_id=f"t{t}", guild_id="1", channel_id="2"))
        with lock:  # the reply is shown only after the service returned it
            sys.stdout.write(json.dumps({"id": r.generation_id, "text": r.text, "status": r.status,
                                         "store_error": r.store_error}) + "\n")
            sys.stdout.flush()
        i += 1
threads = [threading.Thread(target=loop, args=(t,), daemon=True) for t in range(3)]
for th in threads: th.start()
for th in threads: th.join()
"""


class Lines:
    """Whole lines a process writes to stdout, collected by a thread (a torn last line is not 'shown')."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines, self.torn = proc, [], ""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        buf = ""
        while True:
            chunk = self.proc.stdout.read1(4096) if hasattr(self.proc.stdout, "read1") else os.read(
                self.proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk.decode("utf-8", errors="replace") if isinstance(chunk, bytes) else chunk
            *whole, buf = buf.split("\n")
            self.lines.extend(whole)
        self.torn = buf


def one_round(home: Path, db: Path, rng: random.Random, timeout: float = 180) -> dict:
    e = env(home, GHOSTWRITE_DATABASE_URL=f"sqlite:///{db}")
    repl = subprocess.Popen(GW + ["repl", "tiny"], env=e, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    writer = subprocess.Popen([sys.executable, "-c", WRITER], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    prompts = ["/set length 60"] + [f"Line {i}: the queen speaks of {rng.choice(['love', 'war', 'night'])}."
                                    for i in range(400)]
    feeder = threading.Thread(target=_feed, args=(repl, prompts), daemon=True)
    feeder.start()
    out_r, out_w = Lines(repl), Lines(writer)
    want_r, want_w = rng.randint(2, 10), rng.randint(3, 30)
    killed = {}
    deadline = time.monotonic() + timeout
    while len(killed) < 2 and time.monotonic() < deadline:
        for name, proc, out, want in (("repl", repl, out_r, want_r), ("writer", writer, out_w, want_w)):
            if name not in killed and len(out.lines) >= want:
                time.sleep(rng.uniform(0, 0.3))  # somewhere inside the next generation or store write
                proc.send_signal(signal.SIGKILL)
                killed[name] = len(out.lines)
            elif name not in killed and proc.poll() is not None:
                raise AssertionError(f"{name} exited early ({proc.returncode}): "
                                     f"{(proc.stderr.read() if proc.stderr else b'').decode()[-2000:]}")
        time.sleep(0.02)
    for proc in (repl, writer):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    out_r.thread.join(5)
    out_w.thread.join(5)
    assert len(killed) == 2, f"timed out: repl showed {len(out_r.lines)}, writer {len(out_w.lines)}"
    return {"repl": [unescape_line(ln) for ln in out_r.lines if ln],
            "writer": [json.loads(ln) for ln in out_w.lines if ln.strip()]}


def _feed(proc, prompts):
    try:
        for p in prompts:
            proc.stdin.write((p + "\n").encode())
            proc.stdin.flush()
    except (BrokenPipeError, OSError):
        pass


def check(db: Path, shown_repl: list[str], shown_writer: list[dict]) -> dict:
    ok = integrity(db)
    assert ok == "ok", ok
    with Store(f"sqlite:///{db}") as store:
        assert store.integrity_check() == []
        rows = store.list_generations(limit=None)
    stored_repl = Counter(g.output for g in rows if g.source == "repl" and g.status == "complete")
    missing_repl = Counter(shown_repl) - stored_repl
    by_id = {g.id: g for g in rows}
    missing_writer = [w for w in shown_writer if w["id"] not in by_id or by_id[w["id"]].output != w["text"]]
    return {"integrity": ok, "rows": len(rows), "missing_repl": sum(missing_repl.values()),
            "missing_writer": len(missing_writer), "store_errors": sum(1 for w in shown_writer if w["store_error"])}


def run_drill(name: str, rounds: int, home: Path, tmp_path: Path) -> None:
    seed = int(os.environ.get("GHOSTWRITE_DRILL_SEED") or random.SystemRandom().randrange(10**6))
    rng = random.Random(seed)
    db = tmp_path / "drill.db"
    t0 = time.monotonic()
    shown_r, shown_w, per_round = [], [], []
    for _ in range(rounds):
        got = one_round(home, db, rng)
        shown_r += got["repl"]
        shown_w += got["writer"]
        per_round.append((len(got["repl"]), len(got["writer"])))
        figures = check(db, shown_r, shown_w)
        assert figures["missing_repl"] == 0 and figures["missing_writer"] == 0, figures
    wal = db.with_name(db.name + "-wal")
    report(name, seed=seed, rounds=rounds, shown_repl=len(shown_r), shown_service=len(shown_w),
           shown_per_round=per_round, rows_stored=figures["rows"], missing=0, integrity=figures["integrity"],
           store_errors_surfaced=figures["store_errors"], wal_left_bytes=wal.stat().st_size if wal.exists() else 0,
           seconds=round(time.monotonic() - t0, 1))
    assert figures["store_errors"] == 0


def test_kill9_repl_and_service_writer_quick(tiny_model, session_home, tmp_path):
    run_drill("kill9-writers-quick", 1, session_home, tmp_path)


@pytest.mark.slow
def test_kill9_repl_and_service_writer_rounds(tiny_model, session_home, tmp_path):
    run_drill("kill9-writers", int(os.environ.get("GHOSTWRITE_DRILL_ROUNDS", 8)), session_home, tmp_path)
