"""Prefix commands, mentions, reactions and the Cog's life in a host bot, under dpytest."""

import asyncio

import discord
import discord.ext.test as dpytest
import dpytest_shim
import pytest
from discord.ext import commands
from discord_helpers import fast_config, make_host_bot


def rows(store, **kw):
    return store.list_generations(source="discord", limit=None, **kw)


async def test_prefix_continue_replies_then_edits_to_the_final_text(dp_bot, svc, store):
    svc.pace(0.02)
    edits = dpytest_shim.EditLog()
    await dpytest.message("!continue It was a dark night")
    reply = dpytest.get_message()
    (gen,) = rows(store)
    final = dpytest_shim.stored_message(reply.channel.id, reply.id)["content"]
    assert final.startswith("**It was a dark night**") and final.endswith(f"#{gen.id}")
    assert edits.contents(reply.id)[-1] == final
    assert gen.message_id == str(reply.id) and gen.status == "complete"
    assert gen.user_name == str(dp_bot.guilds[0].members[0])


async def test_reactions_are_stored_as_feedback_and_withdrawn(dp_bot, store):
    await dpytest.message("!continue Vote on me")
    reply = dpytest.get_message()
    (gen,) = rows(store)
    member = dp_bot.guilds[0].members[0]
    await dpytest.add_reaction(member, reply, "👍")
    await dpytest.add_reaction(member, reply, "🎉")  # not a vote
    for _ in range(100):
        if store.get_feedback(gen.id):
            break
        await asyncio.sleep(0.02)
    (vote,) = store.get_feedback(gen.id)
    assert (vote.user_id, vote.value, vote.emoji) == (str(member.id), 1, "👍")
    await dpytest.remove_reaction(member, reply, "👍")
    for _ in range(100):
        if not store.get_feedback(gen.id):
            break
        await asyncio.sleep(0.02)
    assert store.get_feedback(gen.id) == []


async def test_bot_reactions_and_bot_messages_are_ignored(dp_bot, store):
    await dpytest.message("!continue Mine")
    reply = dpytest.get_message()
    await reply.add_reaction("👍")  # the bot itself
    await asyncio.sleep(0.1)
    (gen,) = rows(store)
    assert store.get_feedback(gen.id) == []


async def test_mention_continues_text_unless_turned_off(dp_bot, store):
    me = dp_bot.user
    await dpytest.message(f"<@{me.id}> The sea was")
    reply = dpytest.get_message()
    assert reply.content.startswith("**The sea was**") or "The sea was" in reply.content
    assert [g.prompt for g in rows(store)] == ["The sea was"]
    store.set_setting("guild", dp_bot.guilds[0].id, "mentions", False)
    dp_bot.get_cog("Ghostwrite").forget_cached_settings()
    await dpytest.message(f"<@{me.id}> Again")
    await asyncio.sleep(0.1)
    assert dpytest.verify().message().nothing()
    assert len(rows(store)) == 1


async def test_cooldown_on_prefix_commands(dp_bot, store):
    dp_bot.get_cog("Ghostwrite").cooldown.per = 60
    await dpytest.message("!continue first")
    dpytest.get_message()
    await dpytest.message("!continue second")
    refusal = dpytest.get_message()
    assert refusal.content.startswith("Slow down: try again in")
    assert [g.prompt for g in rows(store)] == ["first"]


async def test_settings_refused_for_members(dp_bot, store):
    with pytest.raises(commands.CheckFailure):  # dpytest re-raises what the Cog's handler already answered
        await dpytest.message("!settings set temperature 0.2")
    assert "Manage Server" in dpytest.get_message().content
    assert store.get_settings(dp_bot.guilds[0].id) == {}


async def test_story_over_prefix_commands(dp_bot, store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # dpytest writes sent files into the working directory
    await dpytest.message("!story start Once there was a cat.")
    opening = dpytest.get_message()
    assert opening.content.startswith("**Once there was a cat.**")
    await dpytest.message("!story add The cat sat.")
    dpytest.get_message()
    story = store.active_story(dp_bot.guilds[0].id, dp_bot.guilds[0].text_channels[0].id)
    first, second = sorted(rows(store), key=lambda g: g.id)
    assert story.text == "Once there was a cat." + first.output + "\nThe cat sat." + second.output
    assert second.prompt.endswith("\nThe cat sat.")
    await dpytest.message("!story end")
    end = dpytest.get_message()  # (dpytest drops the content of messages with files)
    assert end.attachments[0].filename == f"story-{story.id}.txt"
    assert (tmp_path / "dpytest_0.dat").read_text(encoding="utf-8") == story.text
    assert store.active_story(dp_bot.guilds[0].id, dp_bot.guilds[0].text_channels[0].id) is None


async def test_guest_in_a_host_bot_with_its_own_commands(svc):
    dpytest_shim.install()
    intents = discord.Intents.default()
    intents.members = True
    intents.message_content = True
    host = commands.Bot(command_prefix="!", intents=intents)
    errors = []

    @host.command()
    async def hello(ctx):
        await ctx.send("host says hi")

    @host.event
    async def on_command_error(ctx, error):
        errors.append(error)

    host_handler = host.on_command_error
    host.ghostwrite_service, host.ghostwrite_config = svc, fast_config()
    await host._async_setup_hook()
    before = {t for t in asyncio.all_tasks()}
    await host.load_extension("bot.discord")
    assert host.on_command_error is host_handler and host.tree.on_error.__self__ is host.tree
    assert not host.tree._global_commands.get("hello")
    dpytest.configure(host)
    await dpytest.message("!hello")
    assert dpytest.verify().message().content("host says hi")
    await dpytest.message("!continue host and guest")
    assert "host and guest" in dpytest.get_message().content
    await host.reload_extension("bot.discord")
    await dpytest.message("!continue after reload")
    assert "after reload" in dpytest.get_message().content
    await host.unload_extension("bot.discord")
    assert host.get_cog("Ghostwrite") is None and host.get_command("continue") is None
    assert host.get_command("hello") is not None
    await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() - before if not t.done() and "ghostwrite" in t.get_name()]
    assert leftover == []
    assert not any(p.pattern.startswith("gw:") for p in host._connection._view_store._dynamic_items)
    await dpytest.empty_queue()


async def test_unload_waits_for_a_running_generation(svc, store):
    bot = await make_host_bot(svc, fast_config(shutdown_grace=5))
    cog = bot.get_cog("Ghostwrite")
    svc.pace(0.02)

    class Quiet:  # a surface that records instead of talking to Discord
        def __init__(self):
            self.pages = []

        async def begin(self):
            pass

        async def send_page(self, index, content, view):
            self.pages.append(content)
            return discord.Object(id=1000 + index)

        async def edit_page(self, message, index, content, view):
            self.pages.append(content)

        async def fail(self, text):
            self.pages.append("FAIL " + text)

    user = discord.Object(id=5)
    user.name = "u"
    task = asyncio.create_task(cog.run_generation(Quiet(), user, 1, 2, "finish me", overrides={"length": 100}))
    await asyncio.sleep(0.1)
    await bot.unload_extension("bot.discord")
    result = await task
    assert result.status == "complete"
    (gen,) = rows(store)
    assert gen.status == "complete" and gen.message_id == "1000"
    await bot.close()


async def test_unload_after_grace_stores_interrupted(svc, store):
    bot = await make_host_bot(svc, fast_config(shutdown_grace=0.3))
    cog = bot.get_cog("Ghostwrite")
    svc.pace(0.05)
    shown = []

    class Quiet:
        async def begin(self):
            pass

        async def send_page(self, index, content, view):
            shown.append(content)
            return discord.Object(id=77)

        async def edit_page(self, message, index, content, view):
            shown.append(content)

        async def fail(self, text):
            shown.append("FAIL " + text)

    user = discord.Object(id=6)
    task = asyncio.create_task(cog.run_generation(Quiet(), user, 1, 2, "long one", overrides={"length": 5000}))
    await asyncio.sleep(0.4)
    await bot.unload_extension("bot.discord")
    with pytest.raises(asyncio.CancelledError):
        await task
    (gen,) = rows(store)
    assert gen.status == "interrupted" and 0 < len(gen.output) < 5000
    assert "interrupted" in shown[-1] and gen.message_id == "77"
    await bot.close()
