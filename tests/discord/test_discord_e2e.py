"""End to end: the real `ghostwrite bot` process against a fake Discord on 127.0.0.1.

The bot logs in over HTTP, syncs its commands to a guild, connects to the gateway, answers a slash command
and a prefix command by streaming, splits a long output into follow-ups, records a 👍, retrains the model on
an uploaded corpus (the real job runner, a real training subprocess) and serves the new version without a
restart, then drains and exits on SIGTERM. The rows it wrote are read back from its database.
"""

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
import pytest_asyncio
from discord_helpers import copy_home
from fake_discord import TOKEN, FakeDiscord
from interactions import ADMIN_PERMISSIONS, APP_ID, CHANNEL_ID, GUILD_ID, USER_ID, interaction_payload, option

from bot.store import Store

pytestmark = pytest.mark.asyncio(loop_scope="module")
ROOT = Path(__file__).resolve().parents[2]


class Live:
    def __init__(self, server: FakeDiscord, proc, store: Store, log_path: Path):
        self.server, self.proc, self.store, self.log_path = server, proc, store, log_path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def slash(self, name: str, options: list, **kw) -> tuple[dict, int]:
        start = len(self.server.calls)
        payload = await self.server.send_interaction(name, options, **kw)
        return payload, start

    async def final_edit(self, start: int, timeout: float = 60.0):
        """The call that puts the footer (`· #<id>`) on a reply, made after call index `start`."""
        return await self.server.wait_for_call(
            lambda c: c.method in ("PATCH", "POST") and " · #" in (c.text or "") and "▌" not in c.text,
            timeout=timeout, start=start)

    def generations(self):
        return self.store.list_generations(source="discord", limit=None)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tiny_home, tmp_path_factory):
    home = copy_home(tiny_home, tmp_path_factory.mktemp("e2e-home"))
    token_file = home / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    db_url = f"sqlite:///{home}/e2e.db"
    server = await FakeDiscord().start()
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    env.update(server.env())
    env.update(GHOSTWRITE_HOME=str(home), GHOSTWRITE_DATABASE_URL=db_url, PYTHONUNBUFFERED="1",
               GHOSTWRITE_DISCORD_EDIT_INTERVAL="0.5", GHOSTWRITE_DISCORD_COOLDOWN_PER="0",
               GHOSTWRITE_DISCORD_PROGRESS_INTERVAL="0.5", GHOSTWRITE_DISCORD_SHUTDOWN_GRACE="0.05",
               GHOSTWRITE_DISCORD_RETRAIN_MAX_TIME="3")
    log_path = home / "bot.log"
    with open(log_path, "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "bot", "--token-file", str(token_file), "--sync",
            "--guild", str(GUILD_ID), cwd=ROOT, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT)
    store = Store(db_url)
    live = Live(server, proc, store, log_path)
    try:
        await asyncio.wait_for(server.identified.wait(), 60)
        for _ in range(600):  # the extension preloads the default model in the background (torch import)
            if "default model loaded" in live.log():
                break
            await asyncio.sleep(0.1)
        yield live
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        store.close()
        await server.stop()


async def test_login_sync_and_gateway(live):
    calls = [(c.method, c.path) for c in live.server.calls]
    assert calls[0] == ("GET", "/users/@me")
    sync = f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands"
    assert ("PUT", sync) in calls
    synced = sorted(c["name"] for c in live.server.commands[str(GUILD_ID)])
    assert synced == ["continue", "forget", "history", "ignoreme", "models", "mydata", "optin", "retrain", "settings",
                      "story"]
    assert live.server.identify_payload["token"] == TOKEN
    assert live.server.identify_payload["intents"] & (1 << 15)  # message content


async def test_slash_continue_streams_into_one_message(live):
    payload, start = await live.slash("continue", [option("prompt", "ROMEO:"), option("length", 1500)])
    final = await live.final_edit(start)
    trace = live.server.trace(start, live.server.calls.index(final) + 1)
    print("\nHTTP calls for one /continue:\n  " + "\n  ".join(trace))
    if os.environ.get("GHOSTWRITE_E2E_TRACE"):
        Path(os.environ["GHOSTWRITE_E2E_TRACE"]).write_text("\n".join(trace) + "\n", encoding="utf-8")
    mine = live.server.calls[start: live.server.calls.index(final) + 1]
    assert mine[0].kind() == "defer" and mine[0].path == f"/interactions/{payload['id']}/{payload['token']}/callback"
    edits = [c for c in mine[1:] if c.path.endswith("/messages/@original")]
    assert len(edits) >= 2 and edits[-1] is final and all(c.method == "PATCH" for c in edits)
    assert all(c.text.startswith("**ROMEO:**") for c in edits)
    assert all(c.payload["allowed_mentions"] == {"parse": []} for c in edits)
    gaps = [b.at - a.at for a, b in zip(edits, edits[1:])]
    assert min(gaps) >= 0.3  # 0.5 s edit interval in this test (1 s by default)
    gen = live.generations()[0]
    assert gen.prompt == "ROMEO:" and gen.status == "complete" and len(gen.output) == 1500
    assert (gen.user_id, gen.guild_id, gen.channel_id) == (str(USER_ID), str(GUILD_ID), str(CHANNEL_ID))
    assert gen.message_id == live.server.originals[payload["token"]]
    assert final.text.endswith(f"-# tiny v{gen.model_version} · 1500 chars · temp 0.8 · #{gen.id}")
    assert [b["custom_id"] for b in final.payload["components"][0]["components"]] == [
        f"gw:retry:{gen.id}", f"gw:more:{gen.id}"]


async def test_prefix_command_replies_and_edits(live):
    start = len(live.server.calls)
    await live.slash("settings", [option("key", "length"), option("value", "4000")], subcommand="set",
                     permissions=ADMIN_PERMISSIONS)  # prefix commands take the channel's defaults
    await live.server.wait_for_call(lambda c: "Settings for this server" in (c.text or ""), start=start)
    msg = await live.server.send_message("!continue To be", user_id=USER_ID + 1, user_name="bo")
    final = await live.final_edit(start)
    first = await live.server.wait_for_call(lambda c: c.method == "POST" and c.path.endswith("/messages"),
                                            start=start)
    assert first.path == f"/channels/{CHANNEL_ID}/messages"
    assert int(first.payload["message_reference"]["message_id"]) == int(msg["id"])
    assert "typing" in [c.path.rsplit("/", 1)[-1] for c in live.server.calls[start:]]
    assert first.payload["allowed_mentions"] == {"parse": [], "replied_user": False}
    mine = live.server.calls[start: live.server.calls.index(final) + 1]
    sends = [c for c in mine if c.method == "POST" and c.path == f"/channels/{CHANNEL_ID}/messages"]
    edits = [c for c in mine if c.method == "PATCH" and c.path.startswith(f"/channels/{CHANNEL_ID}/messages/")]
    assert len(sends) >= 2 and len(edits) >= 1 and all(len(c.text) <= 2000 for c in sends + edits)
    assert "message_reference" not in sends[1].payload  # later pages are plain channel messages
    gen = live.store.list_generations(user_id=USER_ID + 1, limit=1)[0]
    assert gen.prompt == "To be" and gen.user_name == "bo"
    assert live.server.messages[gen.message_id]["content"] == final.text  # votes land on the footer page
    assert len(gen.output) == 4000 and live.store.get_settings(GUILD_ID) == {"length": 4000}


async def test_long_output_is_split_into_followups(live):
    _, start = await live.slash("continue", [option("prompt", "KING:"), option("length", 4500)])
    final = await live.final_edit(start, timeout=90)
    mine = live.server.calls[start: live.server.calls.index(final) + 1]
    followups = [c for c in mine if c.kind() == "followup"]
    assert len(followups) >= 2  # 4,500 characters: three messages
    assert not final.path.endswith("@original")  # the footer and buttons are on the last follow-up
    assert all(len(c.text) <= 2000 for c in mine if c.text is not None)
    gen = live.generations()[0]
    assert gen.prompt == "KING:" and len(gen.output) == 4500 and gen.status == "complete"


async def test_reaction_is_stored_as_feedback(live):
    gen = next(g for g in live.generations() if g.prompt == "ROMEO:")
    await live.server.add_reaction(gen.message_id, "👍", user_id=USER_ID + 7)
    for _ in range(250):
        if live.store.get_feedback(gen.id):
            break
        await asyncio.sleep(0.02)
    (vote,) = live.store.get_feedback(gen.id)
    assert (vote.user_id, vote.value, vote.emoji) == (str(USER_ID + 7), 1, "👍")


async def test_retrain_then_hot_swap_without_restart(live, tiny_home):
    before = live.generations()[0].model_version
    corpus = (tiny_home / "corpus.txt").read_bytes()[:20000]
    att = live.server.add_attachment("more.txt", corpus)
    opts = [{"name": "corpus", "type": 11, "value": att["id"]}, option("name", "tiny")]
    _, start = await live.slash("retrain", opts, subcommand="start", permissions=ADMIN_PERMISSIONS,
                                resolved={"attachments": {att["id"]: att}})
    done = await live.server.wait_for_call(lambda c: "keeps serving" in (c.text or "")
                                           or "now serving" in (c.text or ""), timeout=120, start=start)
    assert f"now serving v{before + 1}" in done.text, live.server.trace(start)
    progress = [c for c in live.server.calls[start:] if c.path.endswith("/messages/@original")]
    assert progress[0].text.startswith("Training **tiny**") and len(progress) >= 2
    (run,) = live.store.list_training_runs()
    assert run.status == "complete" and run.new_version == before + 1 and run.requested_by == str(USER_ID)
    _, start = await live.slash("continue", [option("prompt", "ROMEO:"), option("length", 50)])
    final = await live.final_edit(start)
    assert f"-# tiny v{before + 1} · " in final.text
    assert live.generations()[0].model_version == before + 1


async def test_story_thread_persona_and_channel_corpus(live, tiny_home):
    """Story threads, a persona and /retrain from-channel's preview in the real process."""
    server = live.server
    _, start = await live.slash("settings", [option("key", "length"), option("value", "300")], subcommand="set",
                                permissions=ADMIN_PERMISSIONS)  # (stories take the server's length)
    await server.wait_for_call(lambda c: "Settings for this server" in (c.text or ""), start=start)
    _, start = await live.slash("story", [option("prompt", "ROMEO: Once"), option("mode", "every")], subcommand="start")
    made = await server.wait_for_call(lambda c: c.method == "POST" and c.path.endswith("/threads"), start=start)
    tid = made.path.split("/")[4]
    await server.wait_for_call(lambda c: " · #" in (c.text or "") and c.path.startswith(f"/channels/{tid}/"),
                               start=start, timeout=60)
    start = len(server.calls)
    await server.send_message("JULIET: Twice", channel_id=int(tid))
    reply = await server.wait_for_call(lambda c: " · #" in (c.text or "") and "▌" not in c.text
                                       and c.path.startswith(f"/channels/{tid}/"), start=start, timeout=60)
    assert reply.payload["allowed_mentions"] == {"parse": []}
    story = live.store.active_story(GUILD_ID, tid)
    for _ in range(250):  # its continuation joins the story just after the last edit
        if len(story.text.split("\nJULIET: Twice")[-1]) > 10:
            break
        await asyncio.sleep(0.02)
        story = live.store.get_story(story.id)
    assert story.text.startswith("ROMEO: Once") and len(story.text.split("\nJULIET: Twice")[-1]) > 10
    payload = interaction_payload("story", [], subcommand="end", channel_id=int(tid))
    payload["channel"] = dict(server.threads[tid])
    start = len(server.calls)
    await server.send_raw_interaction(payload)
    await server.wait_for_call(lambda c: c.method == "PATCH" and c.path == f"/channels/{tid}", start=start)
    assert server.threads[tid]["thread_metadata"]["archived"] is True
    # a persona: the model's avatar set with the CLI, the posts through a webhook
    picture = tiny_home.parent / "avatar.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    env = {**os.environ, "GHOSTWRITE_HOME": str(Path(live.store.url.split("///", 1)[1]).parent)}
    done = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot.cli", "models", "set-avatar", "tiny",
                                                str(picture), cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await done.communicate()
    assert done.returncode == 0, err
    _, start = await live.slash("settings", [option("key", "persona"), option("value", "on")], subcommand="set",
                                permissions=ADMIN_PERMISSIONS)
    await server.wait_for_call(lambda c: "persona=True" in (c.text or ""), start=start)
    _, start = await live.slash("continue", [option("prompt", "ROMEO:"), option("length", 40)],
                                user_id=USER_ID + 30)
    final = await live.final_edit(start)
    (wid,) = server.webhooks
    assert final.path.startswith(f"/webhooks/{wid}/") and server.webhook_avatars[wid] == picture.read_bytes()
    _, start = await live.slash("settings", [option("key", "persona"), option("value", "default")], subcommand="set",
                                permissions=ADMIN_PERMISSIONS)
    await server.wait_for_call(lambda c: "Settings for this server" in (c.text or ""), start=start)
    # the channel's messages of members who opted in, previewed
    await server.send_message("I agree to be read.", user_id=USER_ID + 31)
    await server.send_message("I never agreed.", user_id=USER_ID + 32)
    _, start = await live.slash("optin", [], user_id=USER_ID + 31)
    await server.wait_for_call(lambda c: "may go into a corpus" in (c.text or ""), start=start)
    _, start = await live.slash("retrain", [option("preview", 5)], subcommand="from-channel",
                                permissions=ADMIN_PERMISSIONS)
    shown = await server.wait_for_call(lambda c: "Would train on" in (c.text or ""), start=start)
    assert "I agree to be read." in shown.text and "never agreed" not in shown.text


async def test_privacy_controls(live):
    """/ignoreme, /mydata and a metadata-only server in the real process."""
    who = USER_ID + 20
    _, start = await live.slash("ignoreme", [], user_id=who)
    await live.server.wait_for_call(lambda c: "no longer read or store" in (c.text or ""), start=start)
    _, start = await live.slash("continue", [option("prompt", "Hidden"), option("length", 20)], user_id=who)
    refusal = await live.server.wait_for_call(lambda c: "ignore you" in (c.text or ""), start=start)
    assert refusal.ephemeral and live.store.list_generations(user_id=who, limit=None) == []
    _, start = await live.slash("mydata", [], user_id=who)
    sent = await live.server.wait_for_call(lambda c: bool(c.files), start=start)
    assert sent.ephemeral and sent.files == [f"ghostwrite-data-{who}.json"]
    data = json.loads(next(v for k, v in live.server.files.items() if k.endswith(sent.files[0])))
    assert data["user_id"] == str(who) and data["preferences"][0]["ignored"] is True
    _, start = await live.slash("settings", [option("key", "metadata_only"), option("value", "on")], subcommand="set",
                                permissions=ADMIN_PERMISSIONS)
    await live.server.wait_for_call(lambda c: "metadata_only=True" in (c.text or ""), start=start)
    _, start = await live.slash("continue", [option("prompt", "Zebrafinch quasar"), option("length", 30)],
                                user_id=USER_ID + 21)
    final = await live.final_edit(start)
    assert "Zebrafinch quasar" in final.text  # shown, not kept
    (gen,) = live.store.list_generations(user_id=USER_ID + 21, limit=None)
    assert (gen.prompt, gen.output, gen.tokens_out) == ("", "", gen.tokens_out) and gen.tokens_out > 0
    _, start = await live.slash("settings", [option("key", "metadata_only"), option("value", "default")],
                                subcommand="set", permissions=ADMIN_PERMISSIONS)
    await live.server.wait_for_call(lambda c: "Settings for this server" in (c.text or ""), start=start)


async def test_sigterm_drains_and_stores_the_interrupted_generation(live):
    # the drain grace is 0.05 s here (20 s by default): a 20,000-character reply takes the tiny model
    # several times longer, so the generation is still running when the grace ends
    payload, start = await live.slash("continue", [option("prompt", "LONG:"), option("length", 20000)])
    await live.server.wait_for_call(lambda c: c.method == "PATCH" and "▌" in (c.text or ""), start=start)
    live.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(live.proc.wait(), 30) == 0
    await asyncio.wait_for(live.server.gateway_closed.wait(), 5)
    gen = live.generations()[0]
    assert gen.prompt == "LONG:" and gen.status == "interrupted" and 0 < len(gen.output) < 20000
    mine = [c for c in live.server.calls[start:] if payload["token"] in c.path and c.text]
    last = mine[-1]  # the reply's last page (a follow-up once it passed 2,000 characters)
    assert "interrupted" in last.text and f"#{gen.id}" in last.text and "▌" not in last.text
    assert all(g.status != "running" for g in live.generations())
    log = live.log()
    assert TOKEN not in log and "shutting down" in log
    assert "scope=bot+applications.commands&permissions=309774617600" in log  # the invite link it prints
