"""Self-test of the dpytest shim with a trivial cog."""

import discord.ext.test as dpytest
import dpytest_shim
import pytest_asyncio


@pytest_asyncio.fixture
async def bot():
    b = await dpytest_shim.make_bot("gw_sample_ext")
    yield b
    await dpytest_shim.teardown(b)


async def test_prefix_command_and_edit(bot):
    log = dpytest_shim.EditLog()
    await dpytest.message("!ping")
    msg = dpytest.get_message()
    assert msg.content == "pong"
    assert log.contents(msg.id) == ["pong!"]
    assert dpytest_shim.stored_message(msg.channel.id, msg.id)["content"] == "pong!"


async def test_role_creation_with_colors(bot):
    await dpytest.message("!mkrole mods")
    assert dpytest.verify().message().content("made mods")
    guild = bot.guilds[0]
    assert any(r.name == "mods" for r in guild.roles)


async def test_raw_reaction_event_has_type(bot):
    await dpytest.message("hello")
    reply = dpytest.get_message()
    member = bot.guilds[0].members[0]
    await dpytest.add_reaction(member, reply, "👍")
    cog = bot.get_cog("Sample")
    assert cog.reactions == [(reply.id, member.id, "👍")]
