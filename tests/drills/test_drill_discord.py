"""Drills (f) and (g) on Discord: the extension in a plain host bot (no bot-wide `allowed_mentions`, so the
extension's own sends are what is tested), logged in over HTTP and the gateway to the fake Discord of
tests/discord/fake_discord.py, which records every REST call.

(f) Prompts and generated text full of @everyone, @here, role, user and channel mentions, through every way
    the bot writes a message: /continue (streamed edits, 2,000-character follow-ups), the prefix command, a
    mention of the bot, the "more" button, /story start|add|show|end, /history, and error replies that quote
    the user's input. Every message create or edit the bot makes must carry `allowed_mentions` with
    `parse: []` (and no users, roles or replied user to ping).
    (tests/discord checks this for /continue; this drill sweeps every path.)
(g) /retrain with an upload that is too large (the default 10 MiB limit), binary, NUL-containing, empty or
    blank is refused with a clear message; no job is queued, nothing is saved. `JobRunner.submit` itself
    (the REPL's and CLI's path) refuses binary, empty, blank, UTF-16 and missing corpora the same way.
"""

from __future__ import annotations

import asyncio
import fcntl
import sys
import time
from pathlib import Path

import discord
import pytest
import pytest_asyncio
from discord.ext import commands
from drillkit import ROOT, report

from bot.discord.config import DiscordConfig
from bot.service import ContinuationService
from bot.store import Store
from generator.errors import GhostwriteError

sys.path.insert(0, str(ROOT / "tests" / "discord"))
import fake_discord as fd  # noqa: E402
import interactions as ix  # noqa: E402

PINGS = ["@everyone", "@here", "<@900000000000000300>", "<@!900000000000000301>", "<@&900000000000000100>",
         "<@&42>", "<#900000000000000200>"]
PROMPT = "@everyone @here <@&42> <@900000000000000300> <@!7> listen:"
NONE = {"parse": []}


class MentionGeneration:
    """Generated text that is mostly mentions, a word at a time (no torch)."""

    def __init__(self, prompt: str, settings):
        self.seed = settings.seed if settings.seed is not None else 1
        self.tokens_in, self.tokens_out = len(prompt), 0
        self.logprobs = self.finish_reason = None  # (the real generation's, when asked for)
        self.settings = settings
        self._it = self._run()

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._it)

    def close(self):
        self._it.close()

    def _run(self):
        target = self.settings.length if self.settings.unit == "chars" else self.settings.length * 8
        produced, i = 0, 0
        pace = 0.02 if target <= 400 else 0.002  # slow enough for streamed edits (every 0.2 s here)
        while produced < target:
            time.sleep(pace)
            piece = " " + (PINGS[i % len(PINGS)] if i % 3 else "and")
            piece = piece[: target - produced]
            produced += len(piece)
            self.tokens_out += 1
            i += 1
            yield piece


class MentionModel:
    def __init__(self):
        self.name, self.version = "bard", 1
        self.card = {"name": "bard", "version": 1, "tokenizer": {"kind": "char"}, "val_bpc": 1.5, "corpus": "x"}

    def generate(self, prompt, settings, **_options):  # (logprobs=... and whatever the real one takes)
        return MentionGeneration(prompt, settings)

    serve = generate


class MentionService(ContinuationService):
    def __init__(self, store):
        super().__init__(store=store, workers=4)
        self.lm = MentionModel()

    def models(self):
        return [self.lm.card]

    def resolve(self, spec):
        name = (spec or "bard").rsplit("@v", 1)[0]
        if name != "bard":
            raise GhostwriteError(f"unknown model {name!r}; see /models")
        return "bard", 1

    def load_model(self, name, version):
        return self.lm


class Live:
    def __init__(self, server, bot, store, home):
        self.server, self.bot, self.store, self.home = server, bot, store, home

    async def slash(self, name, options=(), **kw):
        start = len(self.server.calls)
        await self.server.send_interaction(name, list(options), **kw)
        return start

    async def reply_after(self, start, predicate, timeout=30.0):
        return await self.server.wait_for_call(predicate, timeout=timeout, start=start)

    async def generation_with_message(self, timeout=10.0):
        """The first generation, once the bot has stored which message shows it (just after the last edit)."""
        for _ in range(int(timeout / 0.05)):
            gens = self.store.list_generations(limit=None)
            if gens and gens[-1].message_id:
                return gens[-1]
            await asyncio.sleep(0.05)
        raise AssertionError("the reply's message id was never stored")

    async def final(self, start, timeout=30.0):
        return await self.reply_after(start, lambda c: c.method in ("POST", "PATCH") and " · #" in (c.text or "")
                                      and "▌" not in (c.text or ""), timeout)


@pytest_asyncio.fixture
async def live(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("GHOSTWRITE_HOME", str(home))
    store = Store(f"sqlite:///{tmp_path}/drill.db")
    svc = MentionService(store)
    async with fd.FakeDiscord() as server, fd.pointed_at(server):
        intents = discord.Intents.default()
        intents.message_content = True
        bot = commands.Bot(command_prefix="!", intents=intents, guild_ready_timeout=0.1)  # a host: no defaults
        bot.ghostwrite_service = svc
        bot.ghostwrite_config = DiscordConfig(cooldown_per=0, edit_interval=0.2, max_concurrent=4, max_queue=8,
                                              progress_interval=0.1, shutdown_grace=2.0, models_refresh=3600)
        await bot.load_extension("bot.discord")
        await bot.login(fd.TOKEN)
        task = asyncio.create_task(bot.connect(reconnect=False))
        await asyncio.wait_for(bot.wait_until_ready(), 30)
        await asyncio.sleep(0.2)
        try:
            yield Live(server, bot, store, home)
        finally:
            await bot.close()
            await asyncio.wait_for(task, 15)
    svc.close()
    store.close()


def _sends(calls):
    """The message creates and edits among the recorded calls, with the part that holds the message."""
    for c in calls:
        if c.method not in ("POST", "PATCH"):
            continue
        if c.path.endswith("/callback"):
            body = (c.payload or {}).get("data")
            if not isinstance(body, dict):
                continue  # a bare defer: no message content
        elif c.path.startswith("/webhooks/") or ("/messages" in c.path and c.path.startswith("/channels/")):
            body = c.payload or {}
        else:
            continue
        if "content" in body or "embeds" in body or c.files:
            yield c, body


async def test_mentions_never_ping_on_any_path(live):
    s = live.server
    start = await live.slash("continue", [ix.option("prompt", PROMPT), ix.option("length", 300)])
    await live.final(start)
    gen = await live.generation_with_message()
    start = await live.slash("continue", [ix.option("prompt", PROMPT), ix.option("length", 4500)])
    await live.final(start)
    # the prefix command, and a plain mention of the bot
    start = len(s.calls)
    await s.send_message(f"!continue {PROMPT}", user_id=ix.USER_ID + 1, user_name="bo")
    await live.final(start)
    start = len(s.calls)
    await s.send_message(f"<@{ix.BOT_USER_ID}> {PROMPT}", user_id=ix.USER_ID + 2, user_name="cy",
                         mentions=[ix.user_payload(ix.BOT_USER_ID, "ghostwrite", bot=True)])
    await live.final(start)
    # the "more" button under the first reply
    message = s.messages[str(gen.message_id)]
    start = len(s.calls)
    await s.send_raw_interaction(ix.component_payload(f"gw:more:{gen.id}", message))
    await live.final(start)
    # a story told in mentions
    start = await live.slash("story", [ix.option("prompt", PROMPT), ix.option("thread", False)], subcommand="start")
    await live.final(start)
    start = await live.slash("story", [ix.option("text", "@everyone <@&42> and then")], subcommand="add")
    await live.final(start)
    start = await live.slash("story", subcommand="show")
    await live.reply_after(start, lambda c: "@everyone" in (c.text or ""))
    start = await live.slash("story", subcommand="end")
    await live.reply_after(start, lambda c: "The end." in (c.text or ""))
    # the user's own words quoted back: history, and errors
    start = await live.slash("history")
    await live.reply_after(start, lambda c: "@everyone" in (c.text or ""))
    start = await live.slash("continue", [ix.option("prompt", "hi"), ix.option("model", "@everyone")])
    await live.reply_after(start, lambda c: "unknown model" in (c.text or ""))
    start = await live.slash("settings", [ix.option("key", "model"), ix.option("value", "<@&42>")],
                             subcommand="set", permissions=ix.ADMIN_PERMISSIONS)
    await live.reply_after(start, lambda c: "unknown model" in (c.text or ""))
    await asyncio.sleep(0.5)  # any trailing edits

    sends = list(_sends(s.calls))
    bad = [(c.method, c.path, body.get("allowed_mentions")) for c, body in sends
           if body.get("allowed_mentions") != NONE and not _none_but_reply(body.get("allowed_mentions"))]
    pinging_text = [c for c, body in sends if any(p in (body.get("content") or "") for p in PINGS)]
    kinds = sorted({c.kind() for c, _ in sends})
    report("discord-mentions", message_sends=len(sends), sends_with_mentions_in_text=len(pinging_text),
           send_kinds=kinds, without_parse_none=len(bad), generations=len(live.store.list_generations(limit=None)))
    assert bad == [], bad
    assert len(pinging_text) >= 10  # the drill had teeth: the raw mentions really were in the text sent


def _none_but_reply(am) -> bool:
    """AllowedMentions.none() as discord.py sends it on a reply: parse [] and replied_user False."""
    return isinstance(am, dict) and am.get("parse") == [] and not am.get("users") and not am.get("roles") \
        and am.get("replied_user") in (None, False)


def _retrain_options(att: dict) -> dict:
    return dict(options=[{"name": "corpus", "type": 11, "value": att["id"]}],
                resolved={"attachments": {att["id"]: att}}, subcommand="start", permissions=ix.ADMIN_PERMISSIONS)


async def test_bad_uploads_are_refused_and_nothing_is_queued(live):
    s = live.server
    limit = DiscordConfig().corpus_max_bytes
    cases = {
        "too large": (ix.attachment_payload("big.txt", limit + 1, url=f"{s.base}/attachments/0/big.txt"),
                      f"the limit is {limit:,} bytes"),
        "binary": (s.add_attachment("photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8\xff"),
                   "not UTF-8 text"),
        "NUL bytes": (s.add_attachment("nul.txt", b"To be\x00or not"), "empty or not plain text"),
        "empty": (s.add_attachment("empty.txt", b""), "empty or not plain text"),
        "blank": (s.add_attachment("blank.txt", b" \n\n\t \r\n"), "empty or not plain text"),
    }
    told = {}
    for what, (att, expected) in cases.items():
        start = len(s.calls)
        payload = ix.interaction_payload("retrain", **_retrain_options(att))
        await s.send_raw_interaction(payload)
        reply = await live.reply_after(start, lambda c: expected in (c.text or ""))  # noqa: B023 (awaited here)
        assert reply.ephemeral, what
        told[what] = reply.text
    await asyncio.sleep(0.3)
    cog = live.bot.get_cog("Ghostwrite")
    runs = live.store.list_training_runs()
    uploads = [p for p in (live.home / "uploads").rglob("*") if p.is_file()] if (live.home / "uploads").exists() else []
    report("discord-bad-uploads", refused=len(told), cases=list(told), jobs_queued=len(runs),
           files_saved=len(uploads), messages=[t[:60] for t in told.values()])
    assert runs == [] and uploads == []
    assert cog.svc.current_job() is None


def test_job_runner_refuses_bad_corpora_and_queues_nothing(tmp_path, monkeypatch):
    from bot.service.jobs import JobRunner

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("GHOSTWRITE_HOME", str(home))
    files = {"binary.bin": b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "nul.txt": b"words\x00more words",
             "latin1.txt": "café au lait".encode("latin-1"), "empty.txt": b"", "blank.txt": b"\n \t\n",
             "utf16.txt": "hello".encode("utf-16")}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder").mkdir()
    paths = [str(tmp_path / n) for n in files] + [str(tmp_path / "missing.txt"), str(tmp_path / "folder")]
    with Store(f"sqlite:///{tmp_path}/jobs.db") as store:
        runner = JobRunner(store)
        messages = {}
        for p in paths:
            with pytest.raises(GhostwriteError) as e:
                runner.submit("tiny", p)
            messages[Path(p).name] = str(e.value)
            assert "\n" not in str(e.value)
        runs = store.list_training_runs()
        assert runs == [] and runner.current() is None
    with open(home / "training.lock", "a+") as f:  # nobody holds the job lock
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    report("jobrunner-bad-corpora", refused=len(messages), jobs_queued=0,
           messages={k: v[-60:] for k, v in messages.items()})
