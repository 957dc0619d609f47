"""The store's behaviour, on SQLite and (when GHOSTWRITE_TEST_PG_URL reaches a server) PostgreSQL.

Every test that takes the `store` fixture runs once per database; SQLite-only checks (pragmas,
BEGIN IMMEDIATE, locked / read-only / corrupt files) follow at the end.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from pgutil import fresh_schema
from sqlalchemy import event, text

import bot.store as store_module
from bot.store import InvalidRecord, Store, StoreError

TABLES = "generations, feedback, training_runs, settings, stories"




@pytest.fixture(scope="module")
def pg_url():
    """A fresh schema of the test database, migrated once; dropped at the end."""
    with fresh_schema("gw_test") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTWRITE_HOME", str(tmp_path))
    monkeypatch.delenv("GHOSTWRITE_DATABASE_URL", raising=False)
    if request.param == "sqlite":
        s = Store()
    else:
        s = Store(request.getfixturevalue("pg_url"))
        with s._db.engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    yield s
    s.close()


def gen(store: Store, **fields) -> int:
    fields.setdefault("model", "poe")
    fields.setdefault("prompt", "Once upon a midnight dreary")
    fields.setdefault("output", ", while I pondered")
    return store.record_generation(**fields)


# ---------------------------------------------------------------------------------------------
# generations


def test_start_then_finish_keeps_every_field(store):
    params = {"temperature": 0.7, "top_k": 40, "top_p": 0.9, "repetition_penalty": 1.1,
              "length": 120, "unit": "words", "seed": 7}  # fmt: skip
    before = datetime.now(timezone.utc)
    gid = store.start_generation(
        model="poe", model_version="v3", prompt="Quoth the raven", source="discord", params=params,
        user_id=1234567890123456789, user_name="ann", guild_id=11, channel_id=22, tokens_in=4,
    )  # fmt: skip
    g = store.get(gid)
    assert g.status == "running" and g.output == "" and g.tokens_out is None
    assert g.model_version == 3 and g.model_spec == "poe@v3"
    assert g.params == params
    assert (g.user_id, g.guild_id, g.channel_id) == ("1234567890123456789", "11", "22")
    assert g.created_at.tzinfo is not None and g.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= g.created_at <= datetime.now(timezone.utc) + timedelta(seconds=1)

    store.finish_generation(gid, " nevermore", status="interrupted", tokens_out=2, latency_ms=321)
    g = store.get(gid)
    assert (g.output, g.status, g.tokens_out, g.latency_ms, g.tokens_in) == (" nevermore", "interrupted", 2, 321, 4)
    store.finish_generation(gid, "", status="error", error="model exploded")
    g = store.get(gid)
    assert (g.status, g.error, g.latency_ms) == ("error", "model exploded", 321)
    assert dataclasses.is_dataclass(g)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.output = "x"  # type: ignore[misc]


def test_bad_generation_input_is_a_store_error(store):
    with pytest.raises(StoreError, match="source"):
        gen(store, source="telegram")
    with pytest.raises(StoreError, match="status"):
        gen(store, status="done")
    with pytest.raises(StoreError, match="no generation with id 999"):
        gen(store, parent_id=999)
    with pytest.raises(StoreError, match="no generation with id 999"):
        store.finish_generation(999, "x")
    gid = store.start_generation(model="poe", prompt="p")
    with pytest.raises(StoreError, match="status"):
        store.finish_generation(gid, "x", status="running")
    with pytest.raises(StoreError, match="version"):
        gen(store, model_version="latest")
    assert store.get(999) is None
    assert len(store.list_generations()) == 1


def test_text_no_database_can_hold_is_stored_the_same_way_on_every_database(store):
    """NUL (refused by PostgreSQL) and lone surrogates (refused by both drivers) become U+FFFD; a surrogate
    pair given as two code points becomes its character; in JSON, non-finite numbers become null."""
    gid = gen(store, prompt="To be\0or", output="not\udcff to be \ud83d\ude00", user_name="a\0b", user_id="u\0",
              params={"stop": "x\0y", "k\ud800": [1.5, float("nan")], "t": float("inf")}, error="e\0")
    g = store.get(gid)
    assert (g.prompt, g.output, g.user_name, g.error) == ("To be\ufffdor", "not\ufffd to be \U0001f600", "a\ufffdb",
                                                          "e\ufffd")
    assert g.params == {"stop": "x\ufffdy", "k\ufffd": [1.5, None], "t": None}
    store.finish_generation(gid, "fin\0al", status="complete")
    assert store.get(gid).output == "fin\ufffdal"
    assert [x.id for x in store.list_generations(user_id="u\0")] == [gid]  # a query compares what it stores
    assert [x.id for x in store.search("To")] == [gid]
    sid = store.start_story("g\0", "c", "Once\0")
    assert store.get_story(sid).text == "Once\ufffd"


def test_a_row_the_database_refuses_for_its_values_is_an_invalid_record(store):
    """Refused for what it holds (here a count no INTEGER column can take): InvalidRecord, which the service
    sets aside instead of retrying; the database is fine and takes the next row."""
    with pytest.raises(InvalidRecord, match="refuses this row") as info:
        gen(store, tokens_out=2**70)
    assert "\n" not in str(info.value)
    assert store.get(gen(store, tokens_out=3)).tokens_out == 3


def test_check_writable_changes_nothing(store):
    gen(store)
    store.check_writable()
    assert len(store.list_generations(limit=None)) == 1


def test_a_generation_written_twice_under_one_key_is_stored_once(store):
    first = gen(store, request_key="abc", output="one")
    assert gen(store, request_key="abc", output="one") == first
    assert gen(store, request_key="abd") != first and gen(store) != gen(store)  # no key: always a new row
    assert [g.output for g in store.list_generations(limit=None)].count("one") == 1
    assert len(store.list_generations(limit=None)) == 4


def test_list_newest_first_with_filters(store):
    now = datetime.now(timezone.utc)
    ids = {
        "old": gen(store, created_at=now - timedelta(days=3), source="cli", user_id="u1"),
        "mid": gen(store, created_at=now - timedelta(hours=5), source="repl", user_id="u2", model_version=1),
        "new": gen(store, created_at=now - timedelta(minutes=1), source="discord", user_id=42,
                   model="austen", model_version=2),
        "newest": gen(store, created_at=now, source="repl", user_id="u2", model_version=2),
    }  # fmt: skip
    listed = [g.id for g in store.list_generations()]
    assert listed == [ids["newest"], ids["new"], ids["mid"], ids["old"]]
    assert [g.id for g in store.list_generations(model="poe")] == [ids["newest"], ids["mid"], ids["old"]]
    assert [g.id for g in store.list_generations(model="poe@v2")] == [ids["newest"]]
    assert [g.id for g in store.list_generations(source="repl")] == [ids["newest"], ids["mid"]]
    assert [g.id for g in store.list_generations(user_id=42)] == [ids["new"]]
    assert [g.id for g in store.list_generations(since=now - timedelta(hours=6))] == [
        ids["newest"], ids["new"], ids["mid"]]  # fmt: skip
    naive_since = (now - timedelta(hours=1)).replace(tzinfo=None)  # naive = UTC
    assert [g.id for g in store.list_generations(since=naive_since)] == [ids["newest"], ids["new"]]
    assert [g.id for g in store.list_generations(limit=2)] == [ids["newest"], ids["new"]]
    assert store.list_generations(source="repl", user_id="u1") == []


def test_message_id_links_a_reply(store):
    gid = gen(store)
    assert store.find_by_message(555) is None
    store.set_message_id(gid, 987654321987654321)
    assert store.find_by_message("987654321987654321").id == gid
    assert store.find_by_message(987654321987654321).id == gid
    with pytest.raises(StoreError):
        store.set_message_id(12345, 1)


def test_chain_follows_parents_oldest_first(store):
    a = gen(store, prompt="A")
    b = gen(store, prompt="B", parent_id=a)
    c = gen(store, prompt="C", parent_id=b)
    other = gen(store, prompt="retry of B", parent_id=a)
    assert [g.prompt for g in store.chain(c)] == ["A", "B", "C"]
    assert [g.id for g in store.chain(other)] == [a, other]
    assert [g.id for g in store.chain(a)] == [a]
    with pytest.raises(StoreError, match="no generation"):
        store.chain(424242)


def test_generations_from_many_threads(store):
    def work(n: int) -> None:
        for i in range(25):
            gen(store, prompt=f"thread {n} item {i}", user_id=f"t{n}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = store.list_generations(limit=None)
    assert len(rows) == 150 and len({g.id for g in rows}) == 150
    assert all(len(store.list_generations(user_id=f"t{n}", limit=None)) == 25 for n in range(6))


# ---------------------------------------------------------------------------------------------
# search


def test_search_finds_words_in_prompt_and_output(store):
    in_prompt = gen(store, prompt="The lighthouse keeper slept", output=" until dawn.")
    in_output = gen(store, prompt="By the sea", output=" stood a Lighthouse, dark and tall.")
    gen(store, prompt="Nothing here", output=" at all")
    assert {g.id for g in store.search("lighthouse")} == {in_prompt, in_output}
    assert [g.id for g in store.search("LIGHTHOUSE keeper")] == [in_prompt]  # every word must appear
    assert [g.id for g in store.search("dark lighthouse")] == [in_output]  # across words, any order
    assert store.search("lighthouses") == []  # whole words
    # FTS syntax and quotes in the query are plain text, never an error
    assert [g.id for g in store.search('"lighthouse" (keeper* AND')] == []  # 'and' is a word too
    assert [g.id for g in store.search('"lighthouse" (keeper*')] == [in_prompt]
    assert [g.id for g in store.search("keeper-slept")] == [in_prompt]
    assert len(store.search("lighthouse", limit=1)) == 1
    with pytest.raises(StoreError, match="nothing to search"):
        store.search("  ?! ")


def test_search_prefers_prompt_matches_on_sqlite(store):
    if store.dialect != "sqlite":
        pytest.skip("bm25 weights are the SQLite index's")
    in_output = gen(store, prompt="A walk", output=" past the harbour and the harbour wall")
    in_prompt = gen(store, prompt="The harbour", output=" was quiet")
    assert [g.id for g in store.search("harbour")][0] == in_prompt != in_output


def test_search_follows_updates_and_deletes(store):
    gid = store.start_generation(model="poe", prompt="alpha beginning", user_id="gone")
    assert [g.id for g in store.search("alpha")] == [gid]
    assert store.search("omega") == []
    store.finish_generation(gid, " omega ending")
    assert [g.id for g in store.search("omega")] == [gid]
    store.finish_generation(gid, " sigma instead", status="interrupted")
    assert store.search("omega") == []
    assert [g.id for g in store.search("sigma")] == [gid]
    store.set_message_id(gid, 77)  # an update of other columns keeps the index right
    assert [g.id for g in store.search("alpha sigma")] == [gid]
    store.forget_user("gone")
    assert store.search("alpha") == [] and store.search("sigma") == []
    assert store.integrity_check() == []


# ---------------------------------------------------------------------------------------------
# feedback and privacy


def test_feedback_one_vote_per_user_and_emoji(store):
    gid = gen(store)
    store.add_feedback(gid, 7, 1)
    store.add_feedback(gid, "7", -1)  # re-vote replaces
    store.add_feedback(gid, 7, 1, emoji="👍")
    store.add_feedback(gid, 8, 1)
    votes = {(f.user_id, f.emoji): f.value for f in store.get_feedback(gid)}
    assert votes == {("7", None): -1, ("7", "👍"): 1, ("8", None): 1}
    assert store.remove_feedback(gid, 7, emoji="👍") == 1
    assert store.remove_feedback(gid, 7, emoji="👍") == 0
    store.add_feedback(gid, 8, -1, emoji="👎")
    assert store.remove_feedback(gid, 8) == 2  # every vote of that user
    assert [(f.user_id, f.value) for f in store.get_feedback(gid)] == [("7", -1)]
    with pytest.raises(StoreError, match=r"\+1 or -1"):
        store.add_feedback(gid, 7, 5)
    with pytest.raises(StoreError, match="no generation"):
        store.add_feedback(99999, 7, 1)


def test_forget_user_removes_everything_of_that_user_and_nothing_else(store):
    a1 = gen(store, user_id="alice", prompt="alice writes zebra")
    a2 = gen(store, user_id="alice", prompt="alice again", parent_id=a1)
    b1 = gen(store, user_id="bob", prompt="bob writes zebra", parent_id=a2)
    b2 = gen(store, user_id="bob", prompt="bob again")
    store.add_feedback(b1, "alice", 1)  # alice's vote on bob's: goes
    store.add_feedback(a1, "bob", -1)  # bob's vote on alice's: goes with the generation
    store.add_feedback(b2, "bob", 1)  # stays
    store.add_feedback(b2, "carol", 1)  # stays
    store.start_story(1, 2, "alice's tale", created_by="alice")
    bob_story = store.start_story(1, 3, "bob's tale", created_by="bob")
    run_a = store.create_training_run("poe", "poe.txt", requested_by="alice")
    run_b = store.create_training_run("poe", "poe.txt", requested_by="bob")

    expected = {"generations": 2, "feedback": 2, "stories": 1, "training_runs": 1}
    assert store.forget_user("alice", dry_run=True) == expected
    assert len(store.list_generations(limit=None)) == 4  # a dry run deletes nothing
    assert store.forget_user("alice") == expected

    assert store.get(a1) is None and store.get(a2) is None
    assert store.list_generations(user_id="alice") == []
    assert {g.id for g in store.list_generations(limit=None)} == {b1, b2}
    assert store.get(b1).parent_id is None  # the parent was alice's
    assert store.get_feedback(b1) == []
    assert sorted((f.user_id, f.value) for f in store.get_feedback(b2)) == [("bob", 1), ("carol", 1)]
    assert store.active_story(1, 2) is None and store.active_story(1, 3).id == bob_story
    assert store.get_training_run(run_a).requested_by is None
    assert store.get_training_run(run_b).requested_by == "bob"
    assert [g.id for g in store.search("zebra")] == [b1]
    assert store.forget_user("alice") == {"generations": 0, "feedback": 0, "stories": 0, "training_runs": 0}


# ---------------------------------------------------------------------------------------------
# export and stats


def test_export_jsonl_and_csv_round_trip(store, monkeypatch):
    monkeypatch.setattr(store_module, "_EXPORT_PAGE", 3)  # several pages
    tricky = 'line one\nline "two", with commas;\ttab — ünïcödé 🐉'
    ids = [gen(store, prompt=f"p{i} " + tricky, output=tricky, params={"seed": i}, user_id=i % 2,
               latency_ms=i) for i in range(8)]  # fmt: skip
    gen(store, model="other")
    expected = [g.to_dict() for g in store.list_generations(model="poe", limit=None)][::-1]

    out = io.StringIO()
    assert store.export("jsonl", out, model="poe") == 8
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["id"] for r in rows] == ids
    assert rows == expected

    out = io.StringIO(newline="")
    assert store.export("csv", out, model="poe") == 8
    parsed = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert [int(r["id"]) for r in parsed] == ids
    for row, want in zip(parsed, expected):
        assert row["prompt"] == want["prompt"] and row["output"] == tricky
        assert json.loads(row["params"]) == want["params"]
        assert row["created_at"] == want["created_at"] and int(row["latency_ms"]) == want["latency_ms"]

    out = io.StringIO()
    assert store.export("jsonl", out, user_id="1") == 4
    with pytest.raises(StoreError, match="format"):
        store.export("xml", io.StringIO())


def test_stats_percentiles_counts_tokens_feedback(store):
    for i, ms in enumerate(range(10, 201, 10)):  # 20 latencies: 10, 20, ..., 200
        gid = gen(store, model="poe", latency_ms=ms, tokens_out=3,
                  status="complete" if i % 4 else "interrupted")  # fmt: skip
    store.add_feedback(gid, "u1", 1)
    store.add_feedback(gid, "u2", 1)
    store.add_feedback(gid, "u3", -1)
    gen(store, model="austen", latency_ms=100, tokens_out=None, status="error", error="boom")
    store.start_generation(model="austen", prompt="running, no latency yet")

    stats = store.stats()
    assert stats["total"] == 22
    poe = stats["models"]["poe"]
    assert poe["count"] == 20 and poe["by_status"] == {"complete": 15, "interrupted": 5}
    assert poe["latency_ms"] == pytest.approx({"p50": 105.0, "p90": 181.0, "p99": 198.1})
    assert poe["tokens_out"] == 60 and poe["feedback"] == 1
    austen = stats["models"]["austen"]
    assert austen["by_status"] == {"error": 1, "running": 1}
    assert austen["latency_ms"] == {"p50": 100, "p90": 100, "p99": 100}
    assert austen["tokens_out"] == 0 and austen["feedback"] == 0
    assert list(stats["models"]) == ["austen", "poe"]


# ---------------------------------------------------------------------------------------------
# training runs, settings, stories


def test_training_runs(store):
    rid = store.create_training_run("poe", corpus="poe.txt", base_model="poe", base_version=2, requested_by=42)
    run = store.get_training_run(rid)
    assert (run.status, run.requested_by, run.started_at, run.base_version) == ("queued", "42", None, 2)
    run = store.update_training_run(rid, status="running", progress={"step": 10, "loss": 2.5})
    assert run.started_at is not None and run.progress == {"step": 10, "loss": 2.5}
    run = store.update_training_run(rid, status="complete", new_version=3, val_bpc=1.87,
                                    metrics={"train_bpc": [2.1, 1.9], "tokens": 1000})  # fmt: skip
    assert run.finished_at >= run.started_at and run.duration_s >= 0
    assert run.metrics == {"train_bpc": [2.1, 1.9], "tokens": 1000} and run.val_bpc == pytest.approx(1.87)
    assert store.get_training_run(rid) == run
    other = store.create_training_run("austen")
    assert [r.id for r in store.list_training_runs()] == [other, rid]
    assert [r.id for r in store.list_training_runs(model="poe")] == [rid]
    assert store.get_training_run(9999) is None
    with pytest.raises(StoreError, match="no field"):
        store.update_training_run(rid, colour="blue")
    with pytest.raises(StoreError, match="status"):
        store.update_training_run(rid, status="exploded")
    with pytest.raises(StoreError, match="no training run"):
        store.update_training_run(9999, status="failed")


def test_settings_channel_overrides_guild(store):
    assert store.get_settings(1, 2) == {}
    store.set_setting("guild", 1, "temperature", 0.8)
    store.set_setting("guild", 1, "model", "poe")
    store.set_setting("channel", 2, "temperature", 1.2, guild_id=1)
    store.set_setting("channel", 2, "enabled", False, guild_id=1)
    store.set_setting("channel", 3, "stops", ["\n\n", "THE END"], guild_id=1)
    assert store.get_settings(1) == {"temperature": 0.8, "model": "poe"}
    assert store.get_settings(1, 2) == {"temperature": 1.2, "model": "poe", "enabled": False}
    assert store.get_settings("1", "3")["stops"] == ["\n\n", "THE END"]
    assert store.set_setting("channel", 2, "temperature", None) == {"enabled": False}
    assert store.get_settings(1, 2)["temperature"] == 0.8
    assert store.all_settings(1) == {"guild": {"temperature": 0.8, "model": "poe"},
                                     "channels": {"2": {"enabled": False}, "3": {"stops": ["\n\n", "THE END"]}}}  # fmt: skip
    assert store.all_settings(99) == {"guild": {}, "channels": {}}
    with pytest.raises(StoreError, match="scope"):
        store.set_setting("user", 1, "x", 1)


def test_concurrent_setting_writes_lose_nothing(store):
    def work(n: int) -> None:
        for i in range(15):
            store.set_setting("guild", 5, f"k{n}_{i}", i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.get_settings(5)) == 60


def test_stories(store):
    assert store.active_story(1, 2) is None
    sid = store.start_story(1, 2, "It was a dark", created_by="ann")
    assert store.append_story(sid, " and stormy night").text == "It was a dark and stormy night"
    story = store.active_story("1", "2")
    assert (story.id, story.active, story.created_by) == (sid, True, "ann")
    assert store.active_story(1, 3) is None
    newer = store.start_story(1, 2, "Call me")  # replaces the running one
    assert store.active_story(1, 2).id == newer and store.get_story(sid).active is False
    assert store.end_story(newer) == "Call me"
    assert store.active_story(1, 2) is None
    dm = store.start_story(None, 9, "in a DM")
    assert store.active_story(None, 9).id == dm
    with pytest.raises(StoreError, match="no story"):
        store.append_story(9999, "x")
    with pytest.raises(StoreError, match="no story"):
        store.end_story(9999)


# ---------------------------------------------------------------------------------------------
# SQLite specifics


@pytest.fixture
def sqlite_store(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTWRITE_HOME", str(tmp_path))
    monkeypatch.delenv("GHOSTWRITE_DATABASE_URL", raising=False)
    s = Store()
    yield s
    s.close()


def test_default_url_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTWRITE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GHOSTWRITE_DATABASE_URL", raising=False)
    with Store() as s:
        assert s.url == f"sqlite:///{tmp_path / 'home' / 'ghostwrite.db'}"
    assert (tmp_path / "home" / "ghostwrite.db").exists()
    monkeypatch.setenv("GHOSTWRITE_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    with Store() as s:
        gen(s)
    assert (tmp_path / "other.db").exists()


def test_sqlite_pragmas(sqlite_store):
    with sqlite_store._db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000


def test_writes_begin_immediate_reads_deferred(sqlite_store):
    seen: list[str] = []

    @event.listens_for(sqlite_store._db.engine, "before_cursor_execute")
    def record(conn, cursor, statement, *args):
        seen.append(statement.strip().split("\n")[0])

    gid = gen(sqlite_store)
    assert seen[0] == "BEGIN IMMEDIATE"
    seen.clear()
    sqlite_store.get(gid)
    assert seen[0] == "BEGIN"


def test_locked_database_is_retried_then_reported(tmp_path, monkeypatch):
    monkeypatch.setattr("bot.store.db.RETRIES", 3)
    path = tmp_path / "locked.db"
    with Store(f"sqlite:///{path}", busy_timeout=0.05) as s:
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")

        def release():
            time.sleep(0.4)
            holder.execute("COMMIT")

        t = threading.Thread(target=release)
        t.start()
        gen(s)  # waits out the other writer through retries
        t.join()
        assert len(s.list_generations()) == 1

        holder.execute("BEGIN IMMEDIATE")
        start = time.monotonic()
        with pytest.raises(StoreError, match="locked by another process") as info:
            gen(s)
        assert time.monotonic() - start < 8
        assert "\n" not in str(info.value)
        holder.execute("ROLLBACK")
        holder.close()
        assert len(s.list_generations()) == 1


def test_read_only_database(tmp_path):
    path = tmp_path / "ro.db"
    with Store(f"sqlite:///{path}") as s:
        gen(s)
    with Store(f"sqlite:///file:{path}?mode=ro&uri=true") as ro:
        assert len(ro.list_generations()) == 1  # reading works
        with pytest.raises(StoreError, match="read-only") as info:
            gen(ro)
        assert "\n" not in str(info.value) and str(path) in str(info.value)
        with pytest.raises(StoreError, match="read-only"):  # found out before writing (an empty BEGIN IMMEDIATE passes)
            ro.check_writable()
        assert len(ro.list_generations()) == 1
    if os.geteuid() != 0:  # root ignores file permissions
        for p in tmp_path.glob("ro.db*"):
            p.chmod(0o444)
        tmp_path.chmod(0o555)
        try:
            with pytest.raises(StoreError, match="read-only|cannot open"):
                with Store(f"sqlite:///{path}") as s:
                    gen(s)
        finally:
            tmp_path.chmod(0o755)


def test_corrupt_database(tmp_path):
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is no database, just some words\n" * 300)
    with pytest.raises(StoreError, match="corrupt") as info:
        Store(f"sqlite:///{path}")
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_unopenable_and_unknown_urls(tmp_path):
    with pytest.raises(StoreError, match="cannot open"):
        Store(f"sqlite:///{tmp_path}/no/such/folder/x.db")
    with pytest.raises(StoreError, match="not a database URL"):
        Store("nonsense")
    with pytest.raises(StoreError, match="driver"):
        Store("mysql://someone@localhost/db")


def test_integrity_check_reports_a_broken_search_index(sqlite_store):
    gid = gen(sqlite_store, prompt="kestrel")
    assert sqlite_store.integrity_check() == []
    with sqlite_store._db.engine.begin() as conn:  # change the text behind the index's back
        conn.exec_driver_sql("DROP TRIGGER generations_fts_update")
        conn.execute(text("UPDATE generations SET prompt = 'falcon' WHERE id = :i"), {"i": gid})
    assert sqlite_store.integrity_check() != []
