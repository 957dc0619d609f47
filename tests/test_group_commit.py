"""Group commit (issue 14, item 2): finished requests' rows written together in one transaction
(Store.record_generations, bot/service/rows.py), with every caller still getting its own row's id, and
nothing lost when a batch fails."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from pgutil import fresh_schema

from bot.service import ContinuationService, Request
from bot.service.rows import GroupCommit
from bot.store import Store
from bot.store.db import InvalidRecord, MissingParent


def _until(condition) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _row(i: int, **kw) -> dict:
    return {"model": "m", "prompt": f"p{i}", "output": f"o{i}", "source": "cli", "request_key": uuid.uuid4().hex,
            "params": {"seed": i}, "tokens_out": i, **kw}


@pytest.fixture(scope="module")
def pg_url():
    with fresh_schema("gw_group_commit") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'g.db'}")
    else:
        s = Store(request.getfixturevalue("pg_url"))
        with s._db.engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE generations, feedback RESTART IDENTITY CASCADE")
    yield s
    s.close()


def test_many_rows_in_one_transaction_ids_in_order(store):
    first = store.record_generation(**_row(0))
    rows = [_row(i, parent_id=first if i == 3 else None) for i in range(1, 9)]
    rows[5]["request_key"] = None  # a row without a key is stored too
    ids = store.record_generations(rows)
    assert len(set(ids)) == 8 and first not in ids
    for gid, r in zip(ids, rows):
        g = store.get(gid)
        assert (g.prompt, g.output, g.status, g.tokens_out) == (r["prompt"], r["output"], "complete", r["tokens_out"])
    assert store.get(ids[2]).parent_id == first
    again = store.record_generations([rows[0], _row(20)])  # a key stored before keeps its first id
    assert again[0] == ids[0] and again[1] not in ids
    assert store.record_generations([]) == []


def _count(store) -> int:
    with store._db.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM generations").scalar()


def test_all_or_none(store):
    before = _count(store)
    with pytest.raises(InvalidRecord):
        store.record_generations([_row(1), _row(2, source="nowhere")])
    with pytest.raises(MissingParent):
        store.record_generations([_row(3), _row(4, parent_id=10_000)])
    with pytest.raises(TypeError):
        store.record_generations([_row(5, colour="red")])
    assert _count(store) == before


def test_writers_that_meet_share_transactions_and_get_their_own_outcome():
    release, calls = threading.Event(), []

    def write_many(rows):
        calls.append(len(rows))
        if len(calls) == 1:
            release.wait(5)  # the first batch is slow: the others queue behind it
        return [(r["i"] * 10, None) for r in rows]

    gc = GroupCommit(write_many)
    got = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, gc.write({"i": i}))) for i in range(12)]
    threads[0].start()
    _until(lambda: calls)
    for t in threads[1:]:
        t.start()
    _until(lambda: len(gc._waiting) == 11)
    release.set()
    for t in threads:
        t.join(5)
    assert got == {i: (i * 10, None) for i in range(12)}
    assert calls == [1, 11] and gc.batches == 2 and gc.largest == 11


def test_a_batch_that_fails_unexpectedly_loses_no_row():
    calls = []

    def write_many(rows):
        calls.append(len(rows))
        if len(rows) > 1:
            raise RuntimeError("bug")
        return [("ok", None)]

    gc = GroupCommit(write_many)
    gc._busy = True  # a write in progress: both rows wait, then go together
    got = []
    threads = [threading.Thread(target=lambda: got.append(gc.write({}))) for _ in range(2)]
    for t in threads:
        t.start()
    _until(lambda: len(gc._waiting) == 2)
    with gc._cv:
        gc._busy = False
        gc._cv.notify_all()
    for t in threads:
        t.join(5)
    assert got == [("ok", None), ("ok", None)] and calls[0] == 2  # written together, failed, then each alone


def test_concurrent_requests_are_stored_each_under_its_own_id(tiny_model, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'svc.db'}")
    with ContinuationService(store=store, default_model="tiny") as svc:
        results = [None] * 8

        def go(i):
            results[i] = svc.run(Request(f"K{i}:\n", settings={"length": 40, "unit": "tokens", "seed": i}))

        threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len({r.generation_id for r in results}) == 8
        for i, r in enumerate(results):
            row = store.get(r.generation_id)
            assert (row.prompt, row.output, row.params["seed"]) == (f"K{i}:\n", r.text, i) and r.store_error is None
        assert svc._rows.batches <= 8
    store.close()


def test_a_refused_row_in_a_batch_is_set_aside_and_the_others_stored(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTWRITE_HOME", str(tmp_path))
    store = Store(f"sqlite:///{tmp_path / 'svc.db'}")
    with ContinuationService(store=store) as svc:
        out = svc._record_batch([_row(1), _row(2, source="nowhere"), _row(3)])
        assert out[0][1] is None and out[2][1] is None and out[1][0] is None and "set aside" in out[1][1]
        assert store.get(out[0][0]).prompt == "p1" and store.get(out[2][0]).prompt == "p3"
        assert len(list((tmp_path / "unsaved-generations" / "rejected").iterdir())) >= 1
    store.close()


def test_the_writer_waits_briefly_for_the_rows_of_requests_still_running(monkeypatch):
    from bot.service import rows

    monkeypatch.setattr(rows, "LINGER_S", 5.0)  # long: the test ends when the rows came, not on the clock
    calls = []
    gc = GroupCommit(lambda batch: calls.append(len(batch)) or [(1, None)] * len(batch))
    for _ in range(3):
        gc.begin()
    threads = [threading.Thread(target=gc.write, args=({},)) for _ in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join(10)
    assert calls == [3]  # one transaction: the first writer waited for the two still running
    t0 = time.monotonic()
    assert gc.write({}) == (1, None) and time.monotonic() - t0 < 1.0  # nothing running: no wait
    assert calls == [3, 1]
