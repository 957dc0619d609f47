"""What several bot processes share through the store (bot/store/members.py): member choices, cooldowns counted
once across processes, the retraining lease, story threads — on SQLite, and on PostgreSQL when one is reachable;
and the REPL keeps no history file when only metadata may be stored."""

import os
import threading
import time

import pytest
from pgutil import fresh_schema

from bot.store import Store, StoreError


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/gw.db"
    else:
        with fresh_schema("gw_members") as pg:
            yield pg


def test_two_stores_count_one_cooldown(url):
    """Two processes (two Store objects, two engines) on one database: the window holds across both, also when
    they hit it at the same moment."""
    a, b = Store(url), Store(url)
    try:
        assert a.hit_cooldown("discord:1", 2, 60, now=1000) is None
        assert b.hit_cooldown("discord:1", 2, 60, now=1001) is None
        assert a.hit_cooldown("discord:1", 2, 60, now=1002) == pytest.approx(58)
        assert b.hit_cooldown("discord:1", 2, 60, now=1061) is None  # the first use left the window
        assert a.hit_cooldown("discord:2", 1, 0) is None and a.hit_cooldown("discord:2", 1, 0) is None  # 0: off
        a.reset_cooldown("discord:1")
        results = []
        barrier = threading.Barrier(8)

        def hit(store):
            barrier.wait()
            results.append(store.hit_cooldown("discord:race", 3, 60))

        threads = [threading.Thread(target=hit, args=(s,)) for s in (a, b) * 4]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(r is None for r in results) == 3  # exactly `rate` admitted, whoever asked
    finally:
        a.close()
        b.close()


def test_lease_is_held_renewed_released_and_expires(url):
    a, b = Store(url), Store(url)
    try:
        assert a.acquire_lock("training", "host-a:1", 60) is None
        assert b.acquire_lock("training", "host-b:2", 60) == "host-a:1"
        assert a.acquire_lock("training", "host-a:1", 60) is None  # renewing
        a.release_lock("training", "host-b:2")  # not the holder: nothing happens
        assert b.acquire_lock("training", "host-b:2", 60) == "host-a:1"
        a.release_lock("training", "host-a:1")
        assert b.acquire_lock("training", "host-b:2", 0.2) is None
        time.sleep(0.3)  # host b died without releasing: its lease runs out
        assert a.acquire_lock("training", "host-a:1", 60) is None
    finally:
        a.close()
        b.close()


def test_member_choices_and_story_threads(url):
    with Store(url) as s:
        s.set_member_pref(1, None, ignored=True)
        s.set_member_pref(1, 50, opted_in=True)
        s.set_member_pref(2, 50, opted_in=True)
        s.set_member_pref(3, 51, opted_in=True)
        assert s.is_ignored(1) and not s.is_ignored(2)
        assert s.opted_in(50) == {"2"}  # an ignored member's messages are not read, opted in or not
        s.set_member_pref(2, 50, opted_in=False)
        assert s.opted_in(50) == set()
        with pytest.raises(StoreError):
            s.set_member_pref(1, None, admin=True)
        sid = s.start_story(50, 700, "Once", 1)
        s.set_story_thread(sid, 700, 600, "mention")
        assert s.story_thread(sid) == {"thread_id": "700", "parent_channel_id": "600", "mode": "mention"}
        with pytest.raises(StoreError, match="mode"):
            s.set_story_thread(sid, 700, 600, "sometimes")
        data = s.user_data(1)
        assert [p["guild_id"] for p in data["preferences"]] == [None, "50"]
        assert [st["id"] for st in data["stories_started"]] == [sid]


@pytest.mark.parametrize("on", [False, True])
def test_repl_keeps_no_history_file_when_only_metadata_is_stored(tmp_path, on):
    import types

    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from bot.repl.terminal import TerminalInput

    svc = types.SimpleNamespace(metadata_only=lambda guild_id=None: on)
    session = types.SimpleNamespace(svc=svc, hint=print, quiet_input=None)
    path = tmp_path / "history"
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        TerminalInput(session, path)
    assert path.exists() is (not on)
    assert os.listdir(tmp_path) == ([] if on else ["history"])
