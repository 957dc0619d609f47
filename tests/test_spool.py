"""The spool: generations that could not be stored wait in the data folder and are written later,
exactly once, whoever writes them and however many processes share the folder.

* Four processes share one data folder: two cannot reach the database and spool every generation,
  two write normally (and flush the spool before each write). After a last flush every generation is
  in the database exactly once — on SQLite and on PostgreSQL.
* A row the database refuses for its content is set aside and never blocks the rows after it; text a
  database cannot hold (NUL, lone surrogates) is stored the same way on both.
* A data folder where nothing can be written is refused in one line before anything is generated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from pgutil import fresh_schema

from bot.service import ContinuationService, Request
from bot.store import Store
from generator.errors import GhostwriteError

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, sys, time
from pathlib import Path
tag, n, ready, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
from bot.service import ContinuationService, Request
svc = ContinuationService(default_model="tiny", workers=1)  # the store from GHOSTWRITE_DATABASE_URL
svc.model("tiny")
ready.touch()
while not go.exists():          # the barrier: all start together
    time.sleep(0.001)
out = []
for i in range(n):
    r = svc.run(Request(f"KING {tag} {i}:\n", settings={"length": 2, "seed": i}))
    out.append({"id": r.generation_id, "store_error": r.store_error})
svc.close()
print(json.dumps(out))
"""


def run_workers(tmp_path: Path, home: Path, urls: dict[str, str], n: int) -> dict[str, list[dict]]:
    go = tmp_path / "go"
    procs, readies = {}, []
    for tag, url in urls.items():
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                   GHOSTWRITE_HOME=str(home), GHOSTWRITE_DATABASE_URL=url, GHOSTWRITE_THREADS="1")
        ready = tmp_path / f"ready-{tag}"
        readies.append(ready)
        procs[tag] = subprocess.Popen([sys.executable, "-c", WORKER, tag, str(n), str(ready), str(go)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in readies):
        assert time.monotonic() < deadline, "workers did not start"
        assert all(p.poll() is None for p in procs.values()), [p.communicate() for p in procs.values()]
        time.sleep(0.01)
    go.touch()
    results = {}
    for tag, p in procs.items():
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        results[tag] = json.loads(out.strip().splitlines()[-1])
    return results


def shared_home(tmp_path: Path, session_home: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(session_home / "models")
    return home


def pending(home: Path) -> list[Path]:
    """Spooled rows still waiting (either spool layout)."""
    spool = home / "unsaved-generations"
    rows = sorted(spool.glob("*.json")) if spool.is_dir() else []
    legacy = home / "unsaved-generations.jsonl"
    return rows + ([legacy] if legacy.exists() else [])


def mixed_processes(tmp_path, session_home, monkeypatch, good_url: str, bad_url: str, n: int = 10) -> None:
    home = shared_home(tmp_path, session_home)
    urls = {"down-a": bad_url, "up-a": good_url, "down-b": bad_url, "up-b": good_url}
    results = run_workers(tmp_path, home, urls, n)
    for tag, rows in results.items():
        if tag.startswith("down"):
            assert all(r["id"] is None and r["store_error"] for r in rows), rows
    monkeypatch.setenv("GHOSTWRITE_HOME", str(home))
    with Store(good_url) as store:
        svc = ContinuationService(store=store)
        svc.flush_spool()  # what the next generation would do first
        svc.close()
        prompts = Counter(g.prompt for g in store.iter_generations())
    expected = {f"KING {tag} {i}:\n" for tag in urls for i in range(n)}
    missing = sorted(expected - set(prompts))
    twice = sorted(p for p, c in prompts.items() if c > 1)
    assert (missing, twice, len(prompts)) == ([], [], len(expected))
    assert pending(home) == []


def test_spooling_and_writing_processes_share_one_spool_sqlite(tmp_path, session_home, tiny_model, monkeypatch):
    good = f"sqlite:///{tmp_path / 'ghostwrite.db'}"
    bad = f"sqlite:///{tmp_path / 'missing' / 'ghostwrite.db'}"  # its folder does not exist: cannot open
    Store(good).close()  # the schema exists before the race (migrating is tested elsewhere)
    mixed_processes(tmp_path, session_home, monkeypatch, good, bad)


@pytest.mark.postgres
def test_spooling_and_writing_processes_share_one_spool_postgres(tmp_path, session_home, tiny_model, monkeypatch):
    with fresh_schema("gw_spool") as good:
        Store(good).close()
        bad = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"  # nothing listens on port 1
        mixed_processes(tmp_path, session_home, monkeypatch, good, bad)


# ---- one process: what the spool does with each row --------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ghostwrite.db'}"
    else:
        with fresh_schema("gw_spool") as url:
            yield url


@pytest.fixture
def svc(db_url, tiny_model, fresh_home, session_home):
    (fresh_home / "models").symlink_to(session_home / "models")
    store = Store(db_url)
    s = ContinuationService(store=store, default_model="tiny")
    yield s
    s.close()
    store.close()


def row(svc, prompt: str, key: str, **extra) -> dict:
    return dict(model="tiny", model_version=1, prompt=prompt, output="o", status="complete", source="cli",
                params={}, request_key=key, **extra)


def test_a_nul_prompt_is_stored_the_same_on_every_database(svc):
    """`printf 'To be\\0or' | ghostwrite generate MODEL -` on PostgreSQL was spooled forever."""
    r = svc.run(Request("To be\0or", settings={"length": 5, "seed": 1}))
    assert r.store_error is None and svc.spool.pending() == []
    assert svc.store.get(r.generation_id).prompt == "To be\ufffdor"
    later = [svc.run(Request(f"KING {i}:\n", settings={"length": 3})) for i in range(5)]
    assert all(x.store_error is None for x in later) and len(svc.store.list_generations(limit=None)) == 6


def test_a_poisoned_row_is_set_aside_and_later_rows_land(svc):
    svc.spool.put(row(svc, "first", "k1"))
    svc.spool.put(row(svc, "poison", "k2", tokens_out=2**70))  # no INTEGER column on either database takes it
    svc.spool.put(row(svc, "nul\0", "k3"))
    svc.spool.put(row(svc, "last", "k4"))
    r = svc.run(Request("KING:\n", settings={"length": 3}))
    assert r.store_error is None and svc.spool.pending() == []
    prompts = [g.prompt for g in svc.store.iter_generations()]
    assert prompts == ["first", "nul\ufffd", "last", "KING:\n"]  # in the order they were spooled, then the new one
    [aside] = (svc.spool.folder / "rejected").iterdir()
    kept = json.loads(aside.read_text())
    assert kept["prompt"] == "poison" and "refuses this row" in kept["refused_because"]
    assert svc.flush_spool() == 0 and len(list(svc.store.iter_generations())) == 4  # never retried


def test_a_row_stored_before_its_file_was_removed_is_not_stored_twice(svc):
    path = svc.spool.put(row(svc, "replayed", "k-replay"))
    svc.store.record_generation(**json.loads(path.read_text()) | {"created_at": None})  # the flusher died here
    assert svc.flush_spool() == 1 and svc.spool.pending() == []
    assert [g.prompt for g in svc.store.iter_generations()] == ["replayed"]


def test_an_old_single_file_spool_is_read_once(svc, fresh_home):
    old = [row(svc, "old one", None), row(svc, "old two\u00e9", None)]
    for r in old:
        del r["request_key"]
    legacy = fresh_home / "unsaved-generations.jsonl"
    legacy.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in old) + "not json\n", encoding="utf-8")
    assert svc.flush_spool() == 2 and not legacy.exists() and svc.spool.pending() == []
    assert svc.flush_spool() == 0
    assert [g.prompt for g in svc.store.iter_generations()] == ["old one", "old two\u00e9"]
    assert len(list((svc.spool.folder / "rejected").iterdir())) == 1  # the unreadable line, kept


def test_one_flusher_at_a_time(svc):
    import fcntl

    svc.spool.put(row(svc, "waiting", "k-wait"))
    with open(svc.spool.folder / ".lock", "a+") as held:  # another process is flushing
        fcntl.flock(held, fcntl.LOCK_EX)
        assert svc.flush_spool() == 0 and len(svc.spool.pending()) == 1
    assert svc.flush_spool() == 1 and svc.spool.pending() == []


# ---- nowhere to keep a generation --------------------------------------------------------------------
@pytest.fixture
def read_only_home(tmp_path, session_home):
    """A data folder nothing can be written in, root included: immutable (chattr +i) where that works,
    else (not root) without write permission; skipped where neither holds."""
    home = tmp_path / "ro-home"
    home.mkdir()
    (home / "models").symlink_to(session_home / "models")
    immutable = subprocess.run(["chattr", "+i", str(home)], capture_output=True).returncode == 0 if os.geteuid() == 0 \
        else False
    if not immutable:
        home.chmod(0o555)
    try:
        probe = home / "probe"
        try:
            probe.touch()
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("cannot make a folder read-only here (chattr +i refused and running as root)")
        yield home
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(home)], check=True)
        home.chmod(0o755)


def test_a_read_only_data_folder_is_one_line_before_generating(read_only_home, tiny_model):
    env = dict(os.environ, GHOSTWRITE_HOME=str(read_only_home), GHOSTWRITE_THREADS="1")
    env.pop("GHOSTWRITE_DATABASE_URL", None)  # the database would be <data dir>/ghostwrite.db
    p = subprocess.run([sys.executable, "-m", "bot.cli", "generate", "tiny", "KING:", "-l", "20", "--stream"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert p.returncode == 2 and p.stdout == "", (p.stdout, p.stderr)  # nothing printed that could not be kept
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "nothing can be stored" in p.stderr and "unsaved-generations" in p.stderr


def test_a_writable_database_is_enough_and_a_writable_spool_is_enough(fresh_home, session_home, tmp_path,
                                                                      tiny_model, monkeypatch):
    (fresh_home / "models").symlink_to(session_home / "models")
    (fresh_home / "unsaved-generations").write_text("a file where the spool folder must be")
    with Store(f"sqlite:///{tmp_path / 'ok.db'}") as store:  # the spool can't be written, the database can
        svc = ContinuationService(store=store, default_model="tiny")
        r = svc.run(Request("KING:\n", settings={"length": 3}))
        assert r.store_error is None and store.get(r.generation_id).output == r.text
        svc.close()
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the database folder must be")
    monkeypatch.setenv("GHOSTWRITE_DATABASE_URL", f"sqlite:///{blocked / 'ghostwrite.db'}")
    svc = ContinuationService(store=None, default_model="tiny")
    try:  # neither: refused before generating
        with pytest.raises(GhostwriteError, match="nothing can be stored, so nothing was generated"):
            svc.stream(Request("KING:\n", settings={"length": 3}))
        (fresh_home / "unsaved-generations").unlink()  # the spool can be written again: generate and keep it
        r = svc.run(Request("KING:\n", settings={"length": 3}))
        assert r.generation_id is None and "cannot open the database" in r.store_error
        assert len(svc.spool.pending()) == 1
    finally:
        svc.close()
