"""Shards across processes: two real `ghostwrite bot --shard-count 2 --shard-ids N` processes against one fake
Discord that serves each its shard (its own gateway connection, READY and guilds), on one database.

Each process has its own data folder (as on two hosts: no shared lock file), so what they share goes through
the database only: a member's cooldown counted by one process holds in the other, and a retraining job
started by one refuses a second one started by the other (the lease in the `locks` table).
"""

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
import pytest_asyncio
from discord_helpers import copy_home
from fake_discord import TOKEN, FakeDiscord
from interactions import ADMIN_PERMISSIONS, CHANNEL_ID, GUILD_ID, option

from bot.store import Store

pytestmark = pytest.mark.asyncio(loop_scope="module")
ROOT = Path(__file__).resolve().parents[2]
COUNT = 2


def other_guild() -> int:
    """A guild id that Discord's formula puts on the other shard than GUILD_ID's."""
    return GUILD_ID + (1 << 22)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def two(tiny_home, tmp_path_factory):
    base = tmp_path_factory.mktemp("shards")
    db_url = f"sqlite:///{base}/shared.db"  # (on several hosts: one PostgreSQL URL)
    server = await FakeDiscord(guild_ids=[other_guild()]).start()
    token_file = base / "token"
    token_file.write_text(TOKEN, encoding="utf-8")
    procs, logs = {}, {}
    for shard in range(COUNT):
        home = copy_home(tiny_home, base / f"home-{shard}")
        env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
        env.update(server.env())
        env.update(GHOSTWRITE_HOME=str(home), GHOSTWRITE_DATABASE_URL=db_url, PYTHONUNBUFFERED="1",
                   GHOSTWRITE_DISCORD_EDIT_INTERVAL="0.5", GHOSTWRITE_DISCORD_COOLDOWN_PER="600",
                   GHOSTWRITE_DISCORD_PROGRESS_INTERVAL="0.5", GHOSTWRITE_DISCORD_SHUTDOWN_GRACE="0.05",
                   GHOSTWRITE_DISCORD_RETRAIN_MAX_TIME="60")
        logs[shard] = home / "bot.log"
        with open(logs[shard], "wb") as log:
            procs[shard] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "bot", "--token-file", str(token_file), "--shard-count",
                str(COUNT), "--shard-ids", str(shard), cwd=ROOT, env=env, stdout=log,
                stderr=asyncio.subprocess.STDOUT)
    store = Store(db_url)
    try:
        for _ in range(900):
            if len(server.identify_payloads) == COUNT and all("default model loaded" in p.read_text() for p in
                                                              logs.values()):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the two processes did not come up: " + " | ".join(
                p.read_text()[-600:] for p in logs.values()))
        yield server, procs, logs, store, tiny_home
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        store.close()
        await server.stop()


def guild_of(shard: int) -> int:
    return next(g for g in (GUILD_ID, other_guild()) if FakeDiscord.shard_of(g, COUNT) == shard)


def channel_of(guild: int) -> int:
    """The fake's channel in `guild` (its other guilds have one channel each: the guild's id + 1)."""
    return CHANNEL_ID if guild == GUILD_ID else guild + 1


async def test_each_process_identifies_with_its_own_shard(two):
    server, _procs, _logs, _store, _home = two
    assert {s: p["shard"] for s, p in server.identify_payloads.items()} == {0: [0, COUNT], 1: [1, COUNT]}
    assert FakeDiscord.shard_of(guild_of(0), COUNT) == 0 and FakeDiscord.shard_of(guild_of(1), COUNT) == 1


async def test_a_cooldown_counted_by_one_process_holds_in_the_other(two):
    server, _procs, _logs, store, _home = two
    start = len(server.calls)
    await server.send_interaction("continue", [option("prompt", "ROMEO:"), option("length", 40)],
                                  guild_id=guild_of(0), channel_id=channel_of(guild_of(0)))
    await server.wait_for_call(lambda c: " · #" in (c.text or "") and "▌" not in c.text, start=start, timeout=60)
    (gen,) = store.list_generations(limit=None)
    assert gen.guild_id == str(guild_of(0))
    # the same member, a moment later, on the other shard's server: the other process refuses
    start = len(server.calls)
    other = guild_of(1)
    await server.send_interaction("continue", [option("prompt", "JULIET:"), option("length", 40)],
                                  guild_id=other, channel_id=channel_of(other))
    refusal = await server.wait_for_call(lambda c: "Slow down" in (c.text or ""), start=start, timeout=30)
    assert refusal.ephemeral
    assert len(store.list_generations(limit=None)) == 1


async def test_one_training_job_across_processes(two):
    server, _procs, logs, store, home = two
    corpus = (home / "corpus.txt").read_bytes()[:20000]
    starts = []
    for shard in range(COUNT):
        guild = guild_of(shard)
        att = server.add_attachment(f"more-{shard}.txt", corpus)
        starts.append(len(server.calls))
        await server.send_interaction(
            "retrain", [{"name": "corpus", "type": 11, "value": att["id"]}, option("name", "tiny")],
            subcommand="start", permissions=ADMIN_PERMISSIONS, resolved={"attachments": {att["id"]: att}},
            guild_id=guild, channel_id=channel_of(guild))
        if shard == 0:
            await server.wait_for_call(lambda c: "is queued" in (c.text or ""), start=starts[0], timeout=60)
    refused = await server.wait_for_call(lambda c: "already running" in (c.text or ""), start=starts[1], timeout=60)
    assert "another process" in refused.text
    runs = store.list_training_runs()
    assert len(runs) == 1 and runs[0].status in ("queued", "running", "complete")
    status = store.list_training_runs()[0].status
    if status == "running":  # cancelling is for the process that runs it
        start = len(server.calls)
        guild = guild_of(1)
        await server.send_interaction("retrain", [], subcommand="cancel", permissions=ADMIN_PERMISSIONS,
                                      guild_id=guild, channel_id=channel_of(guild))
        told = await server.wait_for_call(lambda c: "another bot process" in (c.text or ""), start=start, timeout=30)
        assert told.ephemeral
