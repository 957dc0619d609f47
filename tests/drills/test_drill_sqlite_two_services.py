"""Drill (c): two processes × 500 generations logged into one SQLite file at once, through the service.

Each process is what a bot or REPL holds: a `ContinuationService` over its own `Store`, with a real (tiny)
model, 2 threads generating at once. Both start at the same moment on a new file (so they also race to
create the schema). Nothing may be lost (1000 rows, every returned id stored with its text) and no
"database is locked" may reach a user: every result is complete, has an id and no store error, and nothing
was spooled for later. (tests/test_store_concurrency.py does the same at the store level.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from drillkit import env, integrity, report

from bot.store import Store

WORKER = r"""
import json, sys, threading, time
from pathlib import Path
tag, n, ready, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
from bot.service import ContinuationService, Request
from bot.store import Store
svc = ContinuationService(store=None, default_model="tiny", workers=2)
svc.model("tiny")                       # load the model before the start line
ready.touch()
while not go.exists():
    time.sleep(0.001)
t0 = time.monotonic()
svc.store                               # both open (and migrate) the new file at once
results, errors, lock = [], [], threading.Lock()
def work(t):
    for i in range(t, n, 2):
        try:
            r = svc.run(Request(prompt=f"{tag} {i}:", settings={"length": 8, "seed": i}, source="repl",
                                user_id=tag))
            with lock:
                results.append([r.generation_id, r.text, r.status, r.error, r.store_error])
        except Exception as e:
            with lock:
                errors.append(f"{type(e).__name__}: {e}")
threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
for th in threads: th.start()
for th in threads: th.join()
print(json.dumps({"results": results, "errors": errors, "seconds": round(time.monotonic() - t0, 2)}))
"""


def test_two_processes_500_generations_each_through_the_service(tiny_model, session_home, tmp_path):
    n = int(os.environ.get("GHOSTWRITE_DRILL_GENERATIONS", 500))
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(session_home / "models")
    db = tmp_path / "shared.db"
    e = env(home, GHOSTWRITE_DATABASE_URL=f"sqlite:///{db}")
    go = tmp_path / "go"
    procs, readies = {}, []
    for tag in ("bot", "repl"):
        ready = tmp_path / f"ready-{tag}"
        readies.append(ready)
        procs[tag] = subprocess.Popen([sys.executable, "-c", WORKER, tag, str(n), str(ready), str(go)], env=e,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not all(r.exists() for r in readies):
        assert time.monotonic() < deadline, "workers did not start"
        assert all(p.poll() is None for p in procs.values()), [p.communicate() for p in procs.values()]
        time.sleep(0.02)
    t0 = time.monotonic()
    go.touch()
    out = {}
    for tag, p in procs.items():
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr[-3000:]
        out[tag] = json.loads(stdout.strip().splitlines()[-1])
    wall = time.monotonic() - t0

    surfaced = [err for o in out.values() for err in o["errors"]]
    surfaced += [r[3] or r[4] for o in out.values() for r in o["results"] if r[3] or r[4]]
    locked = [s for s in surfaced if "locked" in s.lower()]
    not_complete = [r for o in out.values() for r in o["results"] if r[2] != "complete" or r[0] is None]
    assert integrity(db) == "ok"
    with Store(f"sqlite:///{db}") as store:
        rows = {g.id: g for g in store.list_generations(limit=None)}
    lost = [r for o in out.values() for r in o["results"] if r[0] not in rows or rows[r[0]].output != r[1]]
    spooled = any((home / "unsaved-generations").glob("*.json"))
    report("sqlite-2x-service", processes=2, generations_each=n, returned=sum(len(o["results"]) for o in out.values()),
           rows=len(rows), lost=len(lost), errors_surfaced=len(surfaced), database_locked=len(locked),
           spooled=spooled, seconds_per_process=[o["seconds"] for o in out.values()], wall_seconds=round(wall, 1),
           generations_per_s=round(2 * n / wall, 1))
    assert surfaced == [] and locked == [] and not_complete == []
    assert len(rows) == 2 * n and lost == [] and not spooled
    for tag in ("bot", "repl"):
        assert sum(1 for g in rows.values() if g.user_id == tag) == n

