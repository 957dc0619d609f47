"""Several bot processes on one PostgreSQL store: per-guild settings and feedback written by one are seen by
the others.

* Two worker processes, each with its own `Store` and `ContinuationService` (what a bot process holds),
  take turns: one sets a guild's settings, the other generates with them; one votes, the other sees it.
* Two real `ghostwrite bot` processes, each logged in to its own fake Discord (tests/discord/fake_discord.py),
  share one database: `/settings set` in one changes what `/continue` does in the other, and a 👍 on a
  reply of one is recorded by the other.

Skipped when GHOSTWRITE_TEST_PG_URL is unset or unreachable; each test gets a fresh schema.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pgutil import fresh_schema

from bot.store import Store

ROOT = Path(__file__).resolve().parents[1]
GUILD, CHANNEL = "4242", "77"

pytestmark = pytest.mark.postgres




@pytest.fixture
def pg_url():
    """A URL whose connections live in a fresh, empty schema (dropped afterwards)."""
    with fresh_schema("gw_mp") as url:
        yield url


# ---------------------------------------------------------------------------------------- two workers
WORKER = r"""
import json, sys
from bot.service import ContinuationService, Request
from bot.store import Store
store = Store(sys.argv[1])
svc = ContinuationService(store=store, default_model="tiny", workers=1)  # loads the model on first use
KEYS = ("temperature", "top_k", "top_p", "repetition_penalty", "length", "unit")
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    op = cmd.pop("op")
    try:
        if op == "set":
            out = store.set_setting(cmd["kind"], cmd["scope"], cmd["key"], cmd["value"], guild_id=cmd["guild"])
        elif op == "get":
            out = store.get_settings(cmd["guild"], cmd.get("channel"))
        elif op == "generate":  # what a bot does for /continue: the guild's and channel's settings, then the service
            s = store.get_settings(cmd["guild"], cmd["channel"])
            r = svc.run(Request(prompt=cmd["prompt"], model=s.get("model"), settings={k: s[k] for k in KEYS if k in s},
                                source="discord", user_id=cmd["user"], guild_id=cmd["guild"], channel_id=cmd["channel"]))
            out = {"id": r.generation_id, "status": r.status, "settings": r.settings, "text": r.text}
        elif op == "vote":
            store.add_feedback(cmd["id"], cmd["user"], cmd["value"], cmd["emoji"])
            out = None
        elif op == "feedback":
            out = [[f.user_id, f.value, f.emoji] for f in store.get_feedback(cmd["id"])]
        elif op == "generation":
            g = store.get(cmd["id"])
            out = {"params": g.params, "guild_id": g.guild_id, "output": g.output}
        else:
            break
        print(json.dumps({"ok": out}), flush=True)
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
svc.close()
store.close()
"""


class Worker:
    def __init__(self, url: str, name: str):
        self.name = name
        env = {**os.environ, "PYTHONPATH": str(ROOT), "GHOSTWRITE_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, url], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def ready(self) -> None:
        line = self.proc.stdout.readline()
        assert line, f"{self.name} did not start:\n{self.proc.stderr.read()[-3000:]}"
        assert json.loads(line) == {"ready": True}

    def __call__(self, op: str, **kw):
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"{self.name} died:\n{self.proc.stderr.read()[-3000:]}"
        reply = json.loads(line)
        assert "error" not in reply, f"{self.name}: {reply['error']}"
        return reply["ok"]

    def close(self) -> None:
        try:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def test_two_bot_processes_share_settings_and_feedback(pg_url, tiny_model):
    t0 = time.monotonic()
    a, b = Worker(pg_url, "bot-a"), Worker(pg_url, "bot-b")  # both create the schema at once
    try:
        a.ready()
        b.ready()
        # a guild admin changes the guild's defaults through A; B's next generation uses them
        a("set", kind="guild", scope=GUILD, key="temperature", value=0.25, guild=GUILD)
        a("set", kind="guild", scope=GUILD, key="length", value=30, guild=GUILD)
        b_gen = b("generate", prompt="KING:\n", guild=GUILD, channel=CHANNEL, user="u-b")
        assert b_gen["status"] == "complete" and len(b_gen["text"]) == 30
        assert b_gen["settings"]["temperature"] == 0.25
        # B overrides one channel; A sees the merged settings (only B generates: A never loads torch)
        b("set", kind="channel", scope=CHANNEL, key="unit", value="words", guild=GUILD)
        b("set", kind="channel", scope=CHANNEL, key="length", value=4, guild=GUILD)
        assert a("get", guild=GUILD, channel=CHANNEL) == {"temperature": 0.25, "length": 4, "unit": "words"}
        assert a("get", guild=GUILD) == {"temperature": 0.25, "length": 30}
        b_gen2 = b("generate", prompt="QUEEN:\n", guild=GUILD, channel=CHANNEL, user="u-b")
        assert b_gen2["settings"]["unit"] == "words" and len(b_gen2["text"].split()) == 4
        # votes taken by either process on B's replies, each seen by the other
        a("vote", id=b_gen["id"], user="voter-1", value=1, emoji="👍")
        b("vote", id=b_gen["id"], user="voter-2", value=1, emoji="👍")
        a("vote", id=b_gen2["id"], user="voter-1", value=-1, emoji="👎")
        assert sorted(b("feedback", id=b_gen["id"])) == [["voter-1", 1, "👍"], ["voter-2", 1, "👍"]]
        assert b("feedback", id=b_gen2["id"]) == [["voter-1", -1, "👎"]]
        assert a("generation", id=b_gen2["id"])["params"]["unit"] == "words"
    finally:
        a.close()
        b.close()
    with Store(pg_url) as store:
        assert store.dialect == "postgresql"
        assert {g.id for g in store.list_generations(limit=None)} == {b_gen["id"], b_gen2["id"]}
        assert store.stats()["models"]["tiny"]["feedback"] == 1
    print(f"\n2 processes on one PostgreSQL: settings A→B and B→A, 3 votes crossed, 2 generations by B; "
          f"{time.monotonic() - t0:.1f} s")


# ---------------------------------------------------------------------- two real `ghostwrite bot`s
def _discord_helpers():
    path = str(ROOT / "tests" / "discord")
    if path not in sys.path:
        sys.path.insert(0, path)
    import fake_discord
    import interactions

    return fake_discord, interactions


def _runner_ready() -> bool:
    try:
        import bot.discord.runner  # noqa: F401
    except ImportError:
        return False
    return True


def _store_wait(fn, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


async def _wait(predicate, timeout: float, what: str, procs=()):
    deadline = time.monotonic() + timeout
    while not predicate():
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a bot exited ({p.returncode}) while waiting for {what}:\n"
                                     f"{p.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.skipif(not _runner_ready(), reason="bot/discord/runner.py (ghostwrite bot) not available")
async def test_two_ghostwrite_bot_processes_on_one_postgres(pg_url, tiny_model, session_home, tmp_path):
    fake_discord, ix = _discord_helpers()
    t0 = time.monotonic()
    async with fake_discord.FakeDiscord() as server_a, fake_discord.FakeDiscord() as server_b:
        procs = []
        for server in (server_a, server_b):
            env = {**os.environ, **server.env(), "DISCORD_TOKEN": fake_discord.TOKEN, "PYTHONPATH": str(ROOT),
                   "GHOSTWRITE_HOME": str(session_home), "GHOSTWRITE_DATABASE_URL": pg_url,
                   "GHOSTWRITE_MODEL": "tiny", "GHOSTWRITE_THREADS": "1", "GHOSTWRITE_DISCORD_COOLDOWN_PER": "0",
                   "GHOSTWRITE_DISCORD_EDIT_INTERVAL": "0.2"}
            procs.append(subprocess.Popen([sys.executable, "-m", "bot.cli", "bot"], env=env, cwd=tmp_path,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        store = Store(pg_url)
        try:
            for server in (server_a, server_b):
                await _wait(server.identified.is_set, 120, "the bots to log in", procs)
            t_ready = time.monotonic() - t0
            # an admin sets the guild's temperature and length through bot A
            start = len(server_a.calls)
            await server_a.send_interaction("settings", [ix.option("key", "temperature"), ix.option("value", "0.3")],
                                            subcommand="set", permissions=ix.ADMIN_PERMISSIONS)
            await server_a.wait_for_call(lambda c: "Settings for" in (c.text or ""), timeout=60, start=start)
            await server_a.send_interaction("settings", [ix.option("key", "length"), ix.option("value", "25")],
                                            subcommand="set", permissions=ix.ADMIN_PERMISSIONS)
            await _wait(lambda: store.get_settings(server_a.guild_id).get("length") == 25, 60, "the setting")
            # a member asks bot B to continue: B uses what A stored
            await server_b.send_interaction("continue", [ix.option("prompt", "KING:")], user_id=ix.USER_ID)
            gens = await asyncio.to_thread(_store_wait, lambda: [g for g in store.list_generations(limit=None)
                                                                  if g.status == "complete" and g.message_id])
            assert len(gens) == 1, gens
            gen = gens[0]
            assert gen.params["temperature"] == 0.3 and len(gen.output) == 25
            assert gen.guild_id == str(server_b.guild_id)
            # a 👍 on B's reply, seen by bot A (the reaction event reaches A's gateway), is stored
            await server_a.add_reaction(gen.message_id, "👍", user_id=ix.USER_ID + 1)
            votes = await asyncio.to_thread(_store_wait, lambda: store.get_feedback(gen.id))
            assert [(f.user_id, f.value) for f in votes] == [(str(ix.USER_ID + 1), 1)]
        finally:
            store.close()
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    print(f"\n2 `ghostwrite bot` processes on one PostgreSQL: logged in after {t_ready:.1f} s; /settings on A "
          f"→ /continue on B used temperature 0.3, length 25; 👍 via A on B's reply stored; "
          f"{time.monotonic() - t0:.1f} s in all")
