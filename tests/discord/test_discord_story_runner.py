"""/story over slash commands, the standalone runner's pieces, and the Red import path."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import discord
import pytest
import yarl
from interactions import ADMIN_PERMISSIONS, CHANNEL_ID, GUILD_ID

from bot.discord import runner
from generator.errors import GhostwriteError

ROOT = Path(__file__).resolve().parents[2]


async def test_story_start_add_show_end_over_slash(harness, store):
    await harness.slash("story", subcommand="start", thread=False)  # in the channel (threads: test_discord_threads)
    (hello,) = harness.replies()
    assert hello.kind() == "respond" and not hello.ephemeral and "/story add" in hello.text
    await harness.slash("story", subcommand="add", text="A knight rode out.")
    await harness.slash("story", subcommand="add", text="The dragon slept.")
    story = store.active_story(GUILD_ID, CHANNEL_ID)
    gens = sorted(store.list_generations(source="discord", limit=None), key=lambda g: g.id)
    assert story.text == "A knight rode out." + gens[0].output + "\nThe dragon slept." + gens[1].output
    assert gens[1].prompt == "A knight rode out." + gens[0].output + "\nThe dragon slept."
    harness.adapter.reset()
    await harness.slash("story", subcommand="show")
    assert harness.replies()[0].text.startswith("A knight rode out.")
    harness.adapter.reset()
    await harness.slash("story", subcommand="end")
    (upload,) = [c for c in harness.calls if c.files]
    assert upload.files == [f"story-{story.id}.txt"] and upload.text.startswith("The end.")
    assert store.active_story(GUILD_ID, CHANNEL_ID) is None
    await harness.slash("story", subcommand="add", text="Too late.")
    assert harness.replies()[-1].ephemeral and "No story is running" in harness.replies()[-1].text


async def test_settings_channel_allow_list(harness, store):
    other = CHANNEL_ID + 1
    resolved = {"channels": {str(other): {"id": str(other), "type": 0, "name": "bots", "permissions": "0",
                                          "guild_id": str(GUILD_ID)}}}
    await harness.slash("settings", subcommand="channel", permissions=ADMIN_PERMISSIONS, resolved=resolved,
                        raw_options=[{"name": "channel", "type": 7, "value": str(other)}], allowed=True)
    assert store.get_settings(GUILD_ID)["allowed_channels"] == [str(other)]
    await harness.slash("continue", prompt="here?", length=5)
    assert "not enabled in this channel" in harness.replies()[-1].text
    await harness.slash("continue", prompt="there", length=5, channel_id=other)
    assert [g.prompt for g in store.list_generations(limit=None)] == ["there"]


def test_token_sources_and_errors(tmp_path):
    secret = "abc.def.ghi"
    f = tmp_path / "token"
    f.write_text(secret + "\n")
    assert runner.read_token(f, environ={"DISCORD_TOKEN": "other"}) == secret
    assert runner.read_token(None, environ={"DISCORD_TOKEN": f" {secret} "}) == secret
    for bad, env in ((None, {}), (tmp_path / "missing", {}), (tmp_path / "empty", {})):
        if bad is not None and bad.name == "empty":
            bad.write_text("  \n")
        with pytest.raises(GhostwriteError) as e:
            runner.read_token(bad, environ=env)
        assert secret not in str(e.value)


def test_endpoint_overrides(monkeypatch):
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    runner.apply_endpoint_overrides({"GHOSTWRITE_DISCORD_API_BASE": "http://127.0.0.1:5/api/v10/",
                                     "GHOSTWRITE_DISCORD_GATEWAY": "ws://127.0.0.1:5/gateway"})
    assert discord.http.Route.BASE == "http://127.0.0.1:5/api/v10"
    assert discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY == yarl.URL("ws://127.0.0.1:5/gateway")


async def test_standalone_bot_shape():
    bot = runner.make_bot(prefix="?")
    assert bot.intents.message_content and not bot.intents.members and not bot.intents.presences
    assert not isinstance(bot, discord.AutoShardedClient)
    assert isinstance(runner.make_bot(shards=2), discord.AutoShardedClient)
    assert bot.allowed_mentions.everyone is False and bot.allowed_mentions.users is False
    await bot.close()


async def test_shard_ids_run_some_of_the_shards_here():
    bot = runner.make_bot(shards=4, shard_ids=runner.parse_shard_ids("3,1", 4))
    assert isinstance(bot, discord.AutoShardedClient) and (bot.shard_count, bot.shard_ids) == (4, [1, 3])
    assert runner.parse_shard_ids(None, None) is None
    for text, count, message in (("0", None, "needs --shard-count"), ("0,0", 2, "distinct"), ("2", 2, "from 0 to 1"),
                                 ("a", 2, "list of numbers"), (",", 2, "distinct")):
        with pytest.raises(GhostwriteError, match=message):
            runner.parse_shard_ids(text, count)


def test_cli_shard_ids_without_a_count_exits_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("GHOSTWRITE_SHARD_COUNT", "GHOSTWRITE_SHARD_IDS")}
    env["DISCORD_TOKEN"] = "x"
    proc = subprocess.run([sys.executable, "-m", "bot.discord.runner", "--shard-ids", "0,1"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "needs --shard-count" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_without_a_token_exits_2_without_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "bot.discord.runner"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no Discord token" in proc.stderr and "Traceback" not in proc.stderr


def test_same_cog_class_loads_under_red(tmp_path):
    """With `redbot.core.commands` importable, the Cog derives from Red's Cog (a stand-in package here)."""
    red = tmp_path / "redbot" / "core"
    red.mkdir(parents=True)
    (tmp_path / "redbot" / "__init__.py").write_text("")
    (red / "__init__.py").write_text("")
    (red / "commands.py").write_text(textwrap.dedent("""
        from discord.ext.commands import *  # noqa: F401,F403
        from discord.ext import commands as _c
        class Cog(_c.Cog):
            red = True
    """))
    code = textwrap.dedent("""
        from bot.discord import compat
        from bot.discord.cog import Ghostwrite
        assert compat.RED and Ghostwrite.red is True
        assert callable(Ghostwrite.red_delete_data_for_user)
        import bot.discord, json
        assert "forget" in bot.discord.__red_end_user_data_statement__
        info = json.load(open("bot/info.json"))
        assert info["end_user_data_statement"] == bot.discord.__red_end_user_data_statement__
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr
