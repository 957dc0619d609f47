"""Story threads, author personas and /retrain from-channel against the fake Discord (REST + gateway on
127.0.0.1): the extension in an unmodified discord.py client, with the scripted service."""

import asyncio

import discord
import pytest
from interactions import ADMIN_PERMISSIONS, CHANNEL_ID, GUILD_ID, MEMBER_PERMISSIONS, USER_ID, option

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24  # enough for the kind check


async def eventually(check, timeout=5.0):
    """`check()` once it holds (the bot stores a story's continuation just after its last edit)."""
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    assert check()


def footer_edit(c):
    return c.method in ("PATCH", "POST") and " · #" in (c.text or "") and "▌" not in c.text


async def start_story(server, prompt, mode="every", permissions=ADMIN_PERMISSIONS):
    start = len(server.calls)
    payload_kw = {"subcommand": "start"}
    options = [option("prompt", prompt), option("mode", mode)]
    from interactions import interaction_payload

    payload = interaction_payload("story", options, **payload_kw, guild_id=server.guild_id, channel_id=CHANNEL_ID)
    payload["app_permissions"] = permissions
    await server.send_raw_interaction(payload)
    return start


async def in_thread(server, name, thread, options=(), subcommand=None):
    """A slash command used inside `thread` (its channel payload is the thread's)."""
    from interactions import interaction_payload

    payload = interaction_payload(name, list(options), subcommand=subcommand, channel_id=int(thread["id"]))
    payload["channel"] = dict(thread)
    start = len(server.calls)
    await server.send_raw_interaction(payload)
    return start


async def test_story_opens_a_thread_continues_after_each_message_and_survives_a_restart(fake_server, gw_live, store):
    server = fake_server
    start = await start_story(server, "Once upon a time a lighthouse keeper")
    made = await server.wait_for_call(lambda c: c.method == "POST" and c.path.endswith("/threads"), start=start)
    assert made.payload["name"] == "Once upon a time a lighthouse keeper"
    tid = made.path.split("/")[4]
    await server.wait_for_call(lambda c: footer_edit(c) and c.path.startswith(f"/channels/{tid}/"), start=start)
    story = store.active_story(GUILD_ID, tid)
    await eventually(lambda: len(store.get_story(story.id).text) > 40)
    assert story.text.startswith("Once upon a time a lighthouse keeper")
    assert store.story_thread(story.id) == {"thread_id": tid, "parent_channel_id": str(CHANNEL_ID), "mode": "every"}
    # a member writes in the thread: the bot continues after it
    for _ in range(100):
        if gw_live.get_channel(int(tid)) is not None:  # THREAD_CREATE arrived
            break
        await asyncio.sleep(0.02)
    start = len(server.calls)
    await server.send_message("A storm came in from the sea.", channel_id=int(tid))
    reply = await server.wait_for_call(lambda c: footer_edit(c) and f"/channels/{tid}/" in c.path, start=start)
    assert "A storm came in from the sea." in reply.text
    await eventually(lambda: len(store.get_story(story.id).text.split("\nA storm came in from the sea.")[-1]) > 5)
    # restart: a new Cog knows nothing but the store
    await gw_live.unload_extension("bot.discord")
    await gw_live.load_extension("bot.discord")
    start = len(server.calls)
    await server.send_message("The lamp went out.", channel_id=int(tid))
    await server.wait_for_call(lambda c: footer_edit(c) and f"/channels/{tid}/" in c.path, start=start)
    await eventually(lambda: len(store.get_story(story.id).text.split("\nThe lamp went out.")[-1]) > 5)
    # the end: the whole text as a file, the thread archived
    start = await in_thread(server, "story", server.threads[tid], subcommand="end")
    await server.wait_for_call(lambda c: c.method == "PATCH" and c.path == f"/channels/{tid}"
                               and c.payload.get("archived") is True, start=start)
    (upload,) = [c for c in server.calls[start:] if c.files]
    assert upload.files == [f"story-{story.id}.txt"]
    assert server.files[next(k for k in server.files if k.endswith(f"story-{story.id}.txt"))].decode().startswith(
        "Once upon a time")
    assert store.active_story(GUILD_ID, tid) is None


async def test_story_in_mention_mode_continues_only_when_asked(fake_server, gw_live, store):
    server = fake_server
    start = await start_story(server, "The map was wrong", mode="mention")
    made = await server.wait_for_call(lambda c: c.method == "POST" and c.path.endswith("/threads"), start=start)
    tid = made.path.split("/")[4]
    await server.wait_for_call(lambda c: footer_edit(c) and c.path.startswith(f"/channels/{tid}/"), start=start)
    for _ in range(100):
        if gw_live.get_channel(int(tid)) is not None:
            break
        await asyncio.sleep(0.02)
    story = store.active_story(GUILD_ID, tid)
    for _ in range(100):  # the continuation is added to the story after its last edit
        if len(store.get_story(story.id).text) > len("The map was wrong"):
            break
        await asyncio.sleep(0.02)
    before = store.get_story(story.id).text
    start = len(server.calls)
    await server.send_message("just chatting", channel_id=int(tid))
    await asyncio.sleep(0.3)
    # a webhook's post (a persona's own, say) that mentions the bot: not a member, no answer
    from interactions import message_payload, user_payload

    me = {"id": str(gw_live.user.id), "username": "ghostwrite", "discriminator": "0", "avatar": None, "bot": True}
    await server.dispatch("MESSAGE_CREATE", message_payload(
        f"<@{gw_live.user.id}> echo", channel_id=int(tid), guild_id=GUILD_ID, author=user_payload(4242, "Some Hook"),
        mentions=[me], webhook_id=4242))
    await asyncio.sleep(0.3)
    assert [c for c in server.calls[start:] if c.method == "POST"] == []
    assert store.get_story(story.id).text == before
    await server.send_message(f"<@{gw_live.user.id}> North was south.", channel_id=int(tid), mentions=[me])
    await server.wait_for_call(lambda c: footer_edit(c) and f"/channels/{tid}/" in c.path, start=start)
    assert "\nNorth was south." in store.get_story(story.id).text


async def test_story_without_thread_permission_runs_in_the_channel(fake_server, gw_live, store):
    start = await start_story(fake_server, "Plainly", permissions=MEMBER_PERMISSIONS)
    await fake_server.wait_for_call(footer_edit, start=start)
    assert not [c for c in fake_server.calls[start:] if c.path.endswith("/threads")]
    await eventually(lambda: store.active_story(GUILD_ID, CHANNEL_ID).text.startswith("Plainly "))


async def test_persona_posts_as_the_author_through_a_webhook_and_votes_and_buttons_work(fake_server, gw_live, store,
                                                                                      svc):
    server = fake_server
    svc.lms["bard"].card["author"] = "Jane Austen"
    svc.set_avatar("bard", PNG)
    store.set_setting("guild", GUILD_ID, "persona", True)
    start = len(server.calls)
    await server.send_interaction("continue", [option("prompt", "It is a truth"), option("length", 60)])
    final = await server.wait_for_call(lambda c: footer_edit(c) and c.path.startswith("/webhooks/"), start=start)
    made = next(c for c in server.calls[start:] if c.method == "POST" and c.path.endswith("/webhooks"))
    assert made.payload["name"] == "Jane Austen"
    (wid,) = server.webhooks
    assert server.webhook_avatars[wid] == PNG
    sends = [c for c in server.calls[start:] if c.path.startswith(f"/webhooks/{wid}/")]
    assert sends[0].method == "POST" and sends[0].payload["username"] == "Jane Austen"
    assert all(c.payload["allowed_mentions"] == {"parse": []} for c in sends)
    assert final.path.startswith(f"/webhooks/{wid}/")
    assert [b["custom_id"].split(":")[1] for b in final.payload["components"][0]["components"]] == ["retry", "more"]
    await eventually(lambda: store.list_generations(limit=None)[0].message_id is not None)  # (after the last edit)
    (gen,) = store.list_generations(limit=None)
    message = server.messages[gen.message_id]
    assert message["webhook_id"] == wid and message["author"]["username"] == "Jane Austen"
    # the caller's own answer points at it
    pointer = await server.wait_for_call(lambda c: "as **Jane Austen**" in (c.text or ""), start=start)
    assert pointer.path.endswith("/messages/@original")
    # a vote on the persona's message counts
    await server.add_reaction(gen.message_id, "👍")
    for _ in range(100):
        if store.get_feedback(gen.id):
            break
        await asyncio.sleep(0.02)
    assert [f.value for f in store.get_feedback(gen.id)] == [1]
    # its Retry button works, through the same webhook (no second one)
    from interactions import component_payload

    start = len(server.calls)
    await server.send_raw_interaction(component_payload(f"gw:retry:{gen.id}", message))
    await server.wait_for_call(lambda c: footer_edit(c) and c.path.startswith(f"/webhooks/{wid}/"), start=start)
    assert len(server.webhooks) == 1
    assert [g.parent_id for g in store.list_generations(limit=None)][0] == gen.id
    # an admin deletes the webhook: the next reply comes as a plain message, the one after makes a new webhook
    server.webhooks.clear()
    start = len(server.calls)
    await server.send_interaction("continue", [option("prompt", "Again"), option("length", 30)])
    plain = await server.wait_for_call(lambda c: footer_edit(c) and wid not in c.path, start=start)
    assert plain.path.endswith("/messages/@original") and not server.webhooks
    start = len(server.calls)
    await server.send_interaction("continue", [option("prompt", "Once more"), option("length", 30)])
    again = await server.wait_for_call(footer_edit, start=start)
    (new,) = server.webhooks
    assert new != wid and again.path.startswith(f"/webhooks/{new}/")


async def test_persona_falls_back_to_plain_messages_without_manage_webhooks(fake_server, gw_live, store, svc):
    store.set_setting("guild", GUILD_ID, "persona", True)
    from interactions import interaction_payload

    payload = interaction_payload("continue", [option("prompt", "Plain"), option("length", 30)])
    payload["app_permissions"] = MEMBER_PERMISSIONS
    start = len(fake_server.calls)
    await fake_server.send_raw_interaction(payload)
    final = await fake_server.wait_for_call(footer_edit, start=start)
    assert final.path.endswith("/messages/@original") and not fake_server.webhooks
    assert not [c for c in fake_server.calls[start:] if "webhooks" in c.path and c.path.startswith("/channels/")]


class FakeJobs:
    """Stands in for the retraining job runner: records what it was asked to train on."""

    def __init__(self):
        self.submitted = []

    def submit(self, model, corpus, **kw):
        from pathlib import Path

        self.submitted.append((model, Path(corpus).read_text(encoding="utf-8")))
        return 7

    def status(self, run_id=None):
        return {"id": 7, "status": "complete", "model": "bard", "new_version": 2, "progress": {}}

    def current(self):
        return None


async def test_retrain_from_channel_reads_only_members_who_opted_in(fake_server, gw_live, store, svc):
    server = fake_server
    other = USER_ID + 1
    for i in range(3):
        await server.send_message(f"Opted line {i} " + "w" * 30, user_id=USER_ID)
        await server.send_message(f"SECRET of a member who never agreed {i}", user_id=other, user_name="bob")
    start = len(server.calls)
    await server.send_interaction("retrain", [], subcommand="from-channel", permissions=ADMIN_PERMISSIONS)
    refusal = await server.wait_for_call(lambda c: "opted in" in (c.text or ""), start=start)
    assert refusal.ephemeral
    await server.send_interaction("optin", [])
    await asyncio.sleep(0.2)
    assert svc.opted_in(GUILD_ID) == {str(USER_ID)}
    start = len(server.calls)
    await server.send_interaction("retrain", [option("preview", 2)], subcommand="from-channel",
                                  permissions=ADMIN_PERMISSIONS)
    shown = await server.wait_for_call(lambda c: "Would train on" in (c.text or ""), start=start)
    assert "3 messages from 1 member" in shown.text and "Opted line 0" in shown.text and "SECRET" not in shown.text
    # too small for the minimum: refused, nothing trained
    svc.job_runner = FakeJobs()
    start = len(server.calls)
    await server.send_interaction("retrain", [], subcommand="from-channel", permissions=ADMIN_PERMISSIONS)
    small = await server.wait_for_call(lambda c: "at least" in (c.text or ""), start=start)
    assert "5,000 characters" in small.text and svc.job_runner.submitted == []
    gw_live.get_cog("Ghostwrite").config.channel_corpus_min_chars = 50
    start = len(server.calls)
    await server.send_interaction("retrain", [], subcommand="from-channel", permissions=ADMIN_PERMISSIONS)
    await server.wait_for_call(lambda c: "now serving v2" in (c.text or ""), start=start)
    ((model, corpus),) = svc.job_runner.submitted
    assert model == "bard" and corpus.splitlines()[0].startswith("Opted line 0") and "SECRET" not in corpus
    # a server that stores metadata only writes no corpus of its members' messages
    store.set_setting("guild", GUILD_ID, "metadata_only", True)
    start = len(server.calls)
    await server.send_interaction("retrain", [], subcommand="from-channel", permissions=ADMIN_PERMISSIONS)
    await server.wait_for_call(lambda c: "metadata only" in (c.text or ""), start=start)
    assert len(svc.job_runner.submitted) == 1


@pytest.mark.parametrize("data", [b"not an image", b""])
def test_set_avatar_refuses_what_is_not_an_image(svc, data):
    from bot.service import GhostwriteError

    with pytest.raises(GhostwriteError, match="PNG, JPEG, GIF or WebP"):
        svc.set_avatar("bard", data)
    with pytest.raises(GhostwriteError, match="unknown model"):
        svc.set_avatar("nobody", PNG)


def test_persona_names_discord_accepts():
    from bot.discord.persona import persona_name

    assert persona_name({"author": "Jane Austen"}, "austen") == "Jane Austen"
    assert persona_name({}, "austen") == "austen"
    assert "discord" not in persona_name({"author": "Discord Poet"}, "x").lower()
    assert len(persona_name({"author": "x" * 200}, "m")) == 80
    assert isinstance(discord.Webhook, type)


async def test_persona_writes_a_story_thread_through_the_parent_channels_webhook(fake_server, gw_live, store, svc):
    server = fake_server
    svc.lms["bard"].card["author"] = "Mary Shelley"
    store.set_setting("guild", GUILD_ID, "persona", True)
    start = await start_story(server, "It was a dreary night")
    made = await server.wait_for_call(lambda c: c.method == "POST" and c.path.endswith("/threads"), start=start)
    tid = made.path.split("/")[4]
    final = await server.wait_for_call(lambda c: footer_edit(c) and c.path.startswith("/webhooks/"), start=start)
    (wid,) = server.webhooks
    assert server.webhooks[wid]["channel_id"] == str(CHANNEL_ID)  # webhooks live on the parent channel
    (first,) = [c for c in server.calls[start:] if c.method == "POST" and c.path.startswith(f"/webhooks/{wid}/")]
    msg = server.messages[next(m for m, v in server.messages.items() if v.get("webhook_id") == wid)]
    assert msg["channel_id"] == tid and msg["author"]["username"] == "Mary Shelley" and first.payload["username"]
    assert final.payload["allowed_mentions"] == {"parse": []}
