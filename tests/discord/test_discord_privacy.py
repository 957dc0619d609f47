"""Privacy controls: /ignoreme, /mydata, and metadata only (a server setting, or GHOSTWRITE_METADATA_ONLY for every
frontend) — nothing with text is written anywhere when it is on: not the database file, not its WAL, not the spool."""

import asyncio
import json

import discord.ext.test as dpytest
import pytest
from discord.ext import commands
from interactions import CHANNEL_ID, GUILD_ID, USER_ID

from bot.service import Request
from bot.store import StoreError

PROMPT = "Zebrafinch quasar lanterns"   # words neither the scripted model nor anything else writes
OUTPUT_WORDS = "quick brown fox jumps"  # what the scripted model writes


def rows(store):
    return store.list_generations(limit=None)


def written_bytes(store, home=None) -> bytes:
    """Every byte the database (file and WAL) and the spool hold."""
    from pathlib import Path

    db = Path(store._db.url.database)
    blobs = [p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists()]
    if home is not None:
        blobs += [p.read_bytes() for p in Path(home).rglob("*") if p.is_file() and "unsaved" in str(p)]
    return b"".join(blobs)


async def test_ignoreme_stops_commands_buttons_and_storing_until_off(harness, store, svc):
    await harness.slash("continue", prompt="Before", length=10)
    message = harness.last_message()
    (gen,) = rows(store)
    harness.adapter.reset()
    await harness.slash("ignoreme")
    (ack,) = harness.replies()
    assert ack.ephemeral and "no longer read or store" in ack.text
    assert svc.is_ignored(USER_ID)
    harness.adapter.reset()
    await harness.slash("continue", prompt="Ignored", length=10)
    (refusal,) = harness.replies()
    assert refusal.ephemeral and "ignore you" in refusal.text
    harness.adapter.reset()
    await harness.press(f"gw:retry:{gen.id}", message)
    assert any("ignore you" in (c.text or "") for c in harness.calls)
    assert len(rows(store)) == 1  # nothing new stored
    await harness.slash("mydata")  # still answered
    await harness.slash("ignoreme", state="off")
    assert not svc.is_ignored(USER_ID)
    await harness.slash("continue", prompt="After", length=10)
    assert len(rows(store)) == 2


async def test_ignored_member_gets_no_answer_to_a_mention_or_prefix_command(dp_bot, store, svc):
    member = dpytest.get_config().members[0]
    svc.set_ignored(member.id, True)
    await dpytest.message(f"<@{dp_bot.user.id}> The sea was", member=0)
    # (dpytest re-raises a command's error; the Cog's handler sent nothing. The class is matched through its
    # base: unloading the extension drops bot.discord's modules, so each load has its own `Ignored`)
    with pytest.raises(commands.CheckFailure, match="ignore you"):
        await dpytest.message("!continue The sea was", member=0)
    await asyncio.sleep(0.1)
    assert dpytest.verify().message().nothing()
    assert rows(store) == []


async def test_mydata_is_a_private_file_of_everything_stored(harness, store):
    await harness.slash("continue", prompt="Mine", length=10)
    await harness.slash("optin")
    harness.adapter.reset()
    await harness.slash("mydata")
    (reply,) = [c for c in harness.calls if c.files]
    assert reply.ephemeral and reply.files == [f"ghostwrite-data-{USER_ID}.json"]
    assert "1 continuations" in reply.text


def test_user_data_holds_generations_votes_and_choices(svc, store):
    gid = store.record_generation(model="bard", prompt="p", output="o", source="discord", user_id=USER_ID)
    store.add_feedback(gid, USER_ID, 1, "👍")
    svc.set_opt_in(USER_ID, GUILD_ID, True)
    data = json.loads(json.dumps(svc.user_data(USER_ID)))
    assert [g["id"] for g in data["generations"]] == [gid] and data["generations"][0]["prompt"] == "p"
    assert [v["value"] for v in data["votes"]] == [1]
    assert data["preferences"] == [dict(data["preferences"][0], guild_id=str(GUILD_ID), opted_in=True, ignored=False)]


async def test_metadata_only_server_writes_no_text_anywhere(harness, store, svc, slash_bot):
    store.set_setting("guild", GUILD_ID, "metadata_only", True)
    await harness.slash("continue", prompt=PROMPT, length=40)
    reply, shown = harness.replies()[-1], harness.last_message()
    assert PROMPT in reply.text and OUTPUT_WORDS.split()[0] in reply.text  # shown, not stored
    (gen,) = rows(store)
    assert (gen.prompt, gen.output, gen.status) == ("", "", "complete") and gen.tokens_out > 0
    assert gen.params["metadata_only"] is True
    # a story: its text lives in the bot's memory only
    await harness.slash("story", subcommand="start", thread=False, prompt=PROMPT)
    await harness.slash("story", subcommand="add", text="Lanterns glowed.")
    story = store.active_story(GUILD_ID, CHANNEL_ID)
    assert story.text == ""
    harness.adapter.reset()
    await harness.slash("story", subcommand="show")
    assert PROMPT in harness.replies()[0].text and "Lanterns glowed." in harness.replies()[0].text
    # the buttons cannot continue a text that was not kept: they say so
    harness.adapter.reset()
    await harness.press(f"gw:more:{gen.id}", shown)
    assert any("stores no text" in (c.text or "") for c in harness.calls), harness.calls
    assert all(g.prompt == "" and g.output == "" for g in rows(store)) and len(rows(store)) == 3
    store.close()  # checkpoint: the WAL folds into the file
    blob = written_bytes(store)
    for word in (*PROMPT.split(), "Lanterns", "glowed", *OUTPUT_WORDS.split()):
        assert word.encode() not in blob, word


def test_environment_variable_holds_for_every_frontend_and_the_spool(svc, store, monkeypatch, tmp_path):
    monkeypatch.setenv("GHOSTWRITE_METADATA_ONLY", "1")
    result = svc.run(Request(prompt=PROMPT, source="cli", settings={"length": 30}))
    assert result.text  # the caller gets the text
    (gen,) = rows(store)
    assert gen.prompt == "" and gen.output == "" and gen.source == "cli"
    sid = svc.start_story(None, None, PROMPT)
    svc.append_story(sid, "more text")
    assert store.get_story(sid).text == ""

    def down(*a, **k):
        raise StoreError("the database is down")

    monkeypatch.setattr(store, "record_generation", down)
    result = svc.run(Request(prompt=PROMPT, source="repl", settings={"length": 30}))
    assert result.store_error and "kept in" in result.store_error
    spooled = list(svc.spool.folder.rglob("*.json*")) or list(svc.spool.folder.rglob("*"))
    data = b"".join(p.read_bytes() for p in spooled if p.is_file())
    assert data and PROMPT.encode() not in data and OUTPUT_WORDS.split()[0].encode() not in data


def test_metadata_only_when_the_database_cannot_say(svc, store, monkeypatch):
    """A server's text is not stored when its setting cannot be read, unless it was seen allowed."""
    monkeypatch.delenv("GHOSTWRITE_METADATA_ONLY", raising=False)
    assert svc.metadata_only(None) is False
    assert svc.metadata_only(GUILD_ID) is False  # seen: off

    def down(*a, **k):
        raise StoreError("the database is down")

    monkeypatch.setattr(store, "get_settings", down)
    assert svc.metadata_only(GUILD_ID) is False
    assert svc.metadata_only(GUILD_ID + 1) is True


@pytest.mark.parametrize("value", ["on", "off"])
async def test_settings_switches(harness, store, value):
    from interactions import ADMIN_PERMISSIONS

    await harness.slash("settings", subcommand="set", permissions=ADMIN_PERMISSIONS, key="metadata_only", value=value)
    assert store.get_settings(GUILD_ID).get("metadata_only") is (value == "on")


async def test_forget_ends_opt_ins_but_keeps_ignoreme(harness, svc):
    await harness.slash("optin")
    assert svc.opted_in(GUILD_ID) == {str(USER_ID)}
    svc.set_ignored(USER_ID, True)
    harness.adapter.reset()
    await harness.slash("forget")
    assert "1 opt ins" in harness.replies()[-1].text
    assert svc.opted_in(GUILD_ID) == set() and svc.is_ignored(USER_ID)
