"""Two processes (say a Discord bot and a REPL) writing one SQLite file at the same moment lose
nothing: 2 × 500 writes → 1000 rows, 0 errors. They also open the new file at the same moment, so
both race to create the schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bot.store import Store

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, os, sys, time
from pathlib import Path
url, tag, n, ready, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])
from bot.store import Store, StoreError
ready.touch()
while not go.exists():          # the barrier: both start together
    time.sleep(0.001)
errors = []
start = time.monotonic()
store = Store(url)              # both migrate the fresh file at once
for i in range(n):
    try:
        if i % 10:
            gid = store.record_generation(model="poe", prompt=f"{tag} prompt {i}", source="repl",
                                          output=f" {tag} output {i}", user_id=tag, params={"i": i})
        else:  # every tenth as the service does it: started, then finished
            gid = store.start_generation(model="poe", prompt=f"{tag} prompt {i}", source="repl",
                                         user_id=tag, params={"i": i})
            store.finish_generation(gid, f" {tag} output {i}", tokens_out=3, latency_ms=i)
        if i % 50 == 0:
            store.add_feedback(gid, "voter", 1)
            store.set_setting("guild", "g", f"{tag}{i}", i)
    except StoreError as e:
        errors.append(str(e))
store.close()
print(json.dumps({"errors": errors, "seconds": round(time.monotonic() - start, 2)}))
"""


def run_workers(url: str, tmp_path: Path, n: int, tags=("bot", "repl")) -> list[dict]:
    go = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    procs, readies = [], []
    for tag in tags:
        ready = tmp_path / f"ready-{tag}"
        readies.append(ready)
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, url, tag, str(n), str(ready), str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        ))  # fmt: skip
    deadline = time.monotonic() + 60
    while not all(r.exists() for r in readies):
        assert time.monotonic() < deadline, "workers did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_two_processes_500_writes_each_lose_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    results = run_workers(url, tmp_path, 500)
    assert [r["errors"] for r in results] == [[], []]
    print("worker seconds:", [r["seconds"] for r in results])

    with Store(url) as store:
        rows = store.list_generations(limit=None)
        assert len(rows) == 1000 and len({g.id for g in rows}) == 1000
        for tag in ("bot", "repl"):
            mine = store.list_generations(user_id=tag, limit=None)
            assert len(mine) == 500
            assert all(g.status == "complete" and g.output.startswith(f" {tag} output") for g in mine)
            assert sorted(g.params["i"] for g in mine) == list(range(500))
            assert len(store.search(f"{tag} output", limit=1000)) == 500
        assert len(store.get_settings("g")) == 20
        assert store.stats()["models"]["poe"]["feedback"] == 20
        assert store.integrity_check() == []
