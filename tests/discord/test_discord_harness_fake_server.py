"""Self-test of the fake Discord server: an unmodified discord.py bot logs in over HTTP + websocket, answers a
message, a slash command and a reaction, and every REST call is recorded."""

import asyncio

import discord
import pytest
import pytest_asyncio
from discord.ext import commands
from fake_discord import TOKEN, FakeDiscord, pointed_at
from interactions import CHANNEL_ID, option


@pytest_asyncio.fixture
async def server():
    async with FakeDiscord() as s, pointed_at(s):
        yield s


@pytest_asyncio.fixture
async def live_bot(server):
    intents = discord.Intents.default()
    intents.message_content = True
    bot = commands.Bot(command_prefix="!", intents=intents, guild_ready_timeout=0.1)
    await bot.load_extension("gw_sample_ext")
    await bot.login(TOKEN)
    task = asyncio.create_task(bot.connect(reconnect=False))
    await asyncio.wait_for(bot.wait_until_ready(), 10)
    yield bot
    await bot.close()
    await asyncio.wait_for(task, 10)


async def test_login_and_ready(server, live_bot):
    assert [(c.method, c.path) for c in server.calls[:1]] == [("GET", "/users/@me")]
    assert server.identify_payload["token"] == TOKEN
    assert live_bot.get_guild(server.guild_id).get_channel(CHANNEL_ID) is not None


async def test_message_reply_and_content_type(server, live_bot):
    await server.send_message("hello")
    call = await server.wait_for_call(lambda c: c.method == "POST" and c.path == f"/channels/{CHANNEL_ID}/messages")
    assert call.payload["content"] == "hi"
    assert call.payload["allowed_mentions"] == {"parse": []}


async def test_slash_command_over_the_gateway(server, live_bot):
    start = len(server.calls)
    await server.send_interaction("echo", [option("text", "y" * 2100)])
    await server.wait_for_call(lambda c: c.method == "POST" and c.path.startswith("/webhooks/"), start=start)
    kinds = [c.kind() for c in server.calls[start:]]
    assert kinds == ["defer", "edit", "followup"]
    assert len(server.calls[start + 1].content) == 2000


async def test_reaction_event_reaches_the_cog(server, live_bot):
    await server.add_reaction(1234, "👍")
    cog = live_bot.get_cog("Sample")
    for _ in range(200):
        if cog.reactions:
            break
        await asyncio.sleep(0.01)
    assert cog.reactions == [(1234, 900000000000000300, "👍")]


async def test_over_long_content_is_rejected(server, live_bot):
    channel = live_bot.get_channel(CHANNEL_ID)
    with pytest.raises(discord.HTTPException) as err:
        await channel.send("z" * 2001)
    assert err.value.status == 400 and err.value.code == 50035


async def test_close_ends_the_gateway(server, live_bot):
    await live_bot.close()
    await asyncio.wait_for(server.gateway_closed.wait(), 5)
