"""Fixtures for the Discord tests.

`svc` is the real `bot.service.ContinuationService` over a real `bot.store.Store` (SQLite in a temp dir); only
the model is replaced (`ScriptedModel`: deterministic words at a chosen pace, no torch), so the service's own
threads, streaming and store writes are exercised. The end-to-end tests use a real trained model instead.
"""

from __future__ import annotations

import discord
import dpytest_shim
import pytest
import pytest_asyncio
from discord.ext import commands
from discord_helpers import ScriptedService, fast_config, make_host_bot
from interactions import Harness

# `from conftest import shared_corpus` in any test module may find this conftest in a full run: the same names
from shared_corpora import SHARED, shared_corpus, shared_path  # noqa: F401

from bot.store import Store


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTWRITE_HOME", str(tmp_path / "home"))
    s = Store(f"sqlite:///{tmp_path}/gw.db")
    yield s
    s.close()


@pytest.fixture
def svc(store):
    s = ScriptedService(store)
    yield s
    s.close()


@pytest_asyncio.fixture
async def slash_bot(svc):
    """A bot with the extension loaded, for the interaction harness (no gateway, no dpytest)."""
    bot = await make_host_bot(svc)
    bot.owner_id = 1
    yield bot
    if "bot.discord" in bot.extensions:
        await bot.unload_extension("bot.discord")
    await bot.close()


@pytest_asyncio.fixture
async def harness(slash_bot):
    """The interaction harness; afterwards it checks that every message the extension sent or edited
    allowed no mentions (generated text must never ping)."""
    async with Harness(slash_bot) as h:
        yield h
    loud = [c for c in h.calls if c.text is not None and c.body.get("allowed_mentions") != {"parse": []}]
    assert loud == [], f"sent without AllowedMentions.none(): {loud}"


@pytest_asyncio.fixture
async def dp_bot(svc):
    """A dpytest-driven bot with the extension loaded."""
    dpytest_shim.install()
    intents = discord.Intents.default()
    intents.members = True
    intents.message_content = True
    bot = commands.Bot(command_prefix="!", intents=intents)
    bot.ghostwrite_service = svc
    bot.ghostwrite_config = fast_config()
    await bot._async_setup_hook()
    await bot.load_extension("bot.discord")
    import discord.ext.test as dpytest

    dpytest.configure(bot)
    yield bot
    await dpytest_shim.teardown(bot)


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory, tiny_model, tiny_corpus, session_home):
    """A data directory of its own holding the session's trained `tiny` char model (tests/conftest.py trains it
    once with the real trainer) and its corpus, for the tests that run a real model."""
    import shutil

    home = tmp_path_factory.mktemp("gw-discord-home")
    shutil.copytree(session_home / "models" / "tiny", home / "models" / "tiny")
    shutil.copy(tiny_corpus, home / "corpus.txt")
    return home


@pytest_asyncio.fixture
async def fake_server():
    """The fake Discord on 127.0.0.1, with in-process clients pointed at it."""
    from fake_discord import FakeDiscord, pointed_at

    async with FakeDiscord() as server, pointed_at(server):
        yield server


@pytest_asyncio.fixture
async def gw_live(fake_server, svc):
    """The extension in an unmodified discord.py bot logged in to the fake Discord (gateway and REST), with the
    scripted service: threads, webhooks and channel history go over HTTP like against Discord."""
    import asyncio

    from fake_discord import TOKEN

    intents = discord.Intents.default()
    intents.message_content = True
    bot = commands.Bot(command_prefix="!", intents=intents, guild_ready_timeout=0.1)
    bot.ghostwrite_service = svc
    bot.ghostwrite_config = fast_config()
    await bot.load_extension("bot.discord")
    await bot.login(TOKEN)
    task = asyncio.create_task(bot.connect(reconnect=False))
    await asyncio.wait_for(bot.wait_until_ready(), 10)
    yield bot
    await bot.close()
    await asyncio.wait_for(task, 10)
