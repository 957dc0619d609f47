"""Self-test of the interaction harness with a trivial cog: payloads reach the real command tree and every
response is recorded in order."""

import discord
import pytest_asyncio
from discord.ext import commands
from interactions import Harness


@pytest_asyncio.fixture
async def bot():
    b = commands.Bot(command_prefix="!", intents=discord.Intents.default())
    await b._async_setup_hook()
    await b.load_extension("gw_sample_ext")
    yield b
    await b.unload_extension("gw_sample_ext")
    await b.close()


async def test_defer_then_edit(bot):
    async with Harness(bot) as h:
        await h.slash("echo", text="hello")
    assert [(c.method, c.kind()) for c in h.calls] == [("POST", "defer"), ("PATCH", "edit")]
    assert h.calls[0].payload == {"type": 5}
    assert h.calls[0].path.endswith("/callback")
    assert h.calls[1].path.endswith("/messages/@original")
    assert h.calls[1].content == "hello"


async def test_long_text_goes_to_a_followup(bot):
    async with Harness(bot) as h:
        await h.slash("echo", text="x" * 2500)
    assert h.adapter.kinds() == ["defer", "edit", "followup"]
    assert [len(c.content) for c in h.calls[1:]] == [2000, 500]


async def test_content_over_limit_is_rejected(bot, caplog):
    async with Harness(bot, content_limit=10) as h:
        await h.slash("echo", text="x" * 11)   # the app command error is logged by the tree, not raised
    assert h.adapter.kinds() == ["defer", "edit"]
    assert "50035" in caplog.text and "Must be 10 or fewer" in caplog.text


async def test_ephemeral_flag_recorded(bot):
    async with Harness(bot) as h:
        await h.slash("secret")
    (call,) = h.calls
    assert call.payload["type"] == 4
    assert call.payload["data"]["flags"] & 64
