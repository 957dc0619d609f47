"""Slash commands through the real command tree: the HTTP calls the extension makes, in order, and the rows
it leaves in the store."""

import asyncio
import threading

from interactions import ADMIN_PERMISSIONS, CHANNEL_ID, GUILD_ID, USER_ID, Harness

NONE = {"parse": []}


def rows(store, **kw):
    return store.list_generations(source="discord", limit=None, **kw)


async def test_continue_defers_first_streams_edits_and_finishes_with_footer_and_buttons(harness, svc, store):
    svc.pace(0.03)  # ~40 pieces → about 1.2 s of streaming, edits every 0.2 s
    await harness.slash("continue", prompt="Once upon", length=200, temperature=0.5)
    calls = harness.calls
    assert calls[0].kind() == "defer" and calls[0].payload == {"type": 5}
    assert all(c.kind() == "edit" and c.path.endswith("/messages/@original") for c in calls[1:])
    streamed, final = calls[1:-1], calls[-1]
    assert len(streamed) >= 2, harness.adapter.kinds()
    assert all(c.content.endswith("▌") and c.content.startswith("**Once upon**") for c in streamed)
    gaps = [b.at - a.at for a, b in zip(streamed, streamed[1:])]
    assert min(gaps) >= 0.15  # never faster than the edit interval (0.2 s here, 1 s by default)
    assert all(c.payload["allowed_mentions"] == NONE for c in calls[1:])
    (gen,) = rows(store)
    assert final.content.startswith("**Once upon**")
    assert final.content.endswith(f"-# bard v1 · 200 chars · temp 0.5 · #{gen.id}")
    buttons = [b["custom_id"] for row in final.payload["components"] for b in row["components"]]
    assert buttons == [f"gw:retry:{gen.id}", f"gw:more:{gen.id}"]
    assert gen.status == "complete" and len(gen.output) == 200
    assert (gen.user_id, gen.guild_id, gen.channel_id) == (str(USER_ID), str(GUILD_ID), str(CHANNEL_ID))
    assert gen.params["temperature"] == 0.5
    assert gen.message_id is not None  # the @original message, so reactions find it


async def test_long_output_continues_in_followups_under_2000_chars(harness, svc, store):
    await harness.slash("continue", prompt="Long", length=4500)
    kinds = harness.adapter.kinds()
    assert kinds[0] == "defer" and kinds.count("followup") >= 2
    contents = [c.content for c in harness.calls[1:] if c.kind() in ("edit", "followup")]
    assert all(len(c) <= 2000 for c in contents)
    (gen,) = rows(store)
    last = harness.calls[-1]
    assert last.kind() == "followup" and f"#{gen.id}" in last.content and "components" in last.payload
    assert all(c.payload["allowed_mentions"] == NONE for c in harness.calls[1:])
    # the pages, read in order, hold the whole continuation (markdown escaped, whitespace trimmed at cuts)
    shown = "".join(c for c in contents[-3:]).replace("\\", "")
    assert "".join(gen.output.split()) in "".join(shown.split())
    assert int(gen.message_id) == int(harness.adapter._messages[list(harness.adapter._messages)[-1]]["id"])


async def test_unknown_model_is_a_short_ephemeral_error(harness, store):
    await harness.slash("continue", prompt="x", model="nope")
    kinds = harness.adapter.kinds()
    assert kinds == ["defer", "delete", "followup"]
    error = harness.calls[-1]
    assert error.payload["flags"] & 64 and "unknown model 'nope'" in error.content
    assert rows(store) == []


async def test_generation_failure_is_stored_and_reported(harness, store):
    await harness.slash("continue", prompt="FAIL-NOW please")
    assert harness.adapter.kinds() == ["defer", "delete", "followup"]
    assert "failed" in harness.calls[-1].content and harness.calls[-1].payload["flags"] & 64
    (gen,) = rows(store)
    assert gen.status == "error" and gen.error == "the model broke"


async def test_cooldown_refuses_before_deferring(slash_bot, svc):
    cog = slash_bot.get_cog("Ghostwrite")
    cog.cooldown.per = 60
    async with Harness(slash_bot) as h:
        await h.slash("continue", prompt="one", length=10)
        h.adapter.reset()
        await h.slash("continue", prompt="two", length=10)
        (refusal,) = h.calls
        assert refusal.kind() == "respond" and refusal.payload["data"]["flags"] & 64
        assert refusal.payload["data"]["content"].startswith("Slow down: try again in")
        h.adapter.reset()
        await h.slash("continue", prompt="three", length=10, user_id=USER_ID + 1)  # others are not affected
        assert h.adapter.kinds()[0] == "defer"


async def test_busy_reply_beyond_the_queue(slash_bot, svc, store):
    cog = slash_bot.get_cog("Ghostwrite")
    cog.gate.max_concurrent, cog.gate.max_queue = 1, 1
    hold = threading.Event()
    svc.lms["bard"].gate = hold
    async with Harness(slash_bot) as h:
        first = asyncio.create_task(h.slash("continue", prompt="a", length=10, user_id=1))
        await asyncio.sleep(0.2)
        second = asyncio.create_task(h.slash("continue", prompt="b", length=10, user_id=2))
        await asyncio.sleep(0.2)
        assert (cog.gate.running, cog.gate.waiting) == (1, 1)
        await h.slash("continue", prompt="c", length=10, user_id=3)
        refusal = h.calls[-1]
        assert refusal.kind() == "respond" and refusal.payload["data"]["flags"] & 64
        assert "busy, try again in" in refusal.payload["data"]["content"]
        hold.set()
        await asyncio.gather(first, second)
    assert sorted(g.prompt for g in rows(store)) == ["a", "b"]


async def test_settings_need_manage_server(harness, store):
    await harness.slash("settings", subcommand="set", key="temperature", value="0.3")
    (refusal,) = harness.calls
    assert refusal.payload["data"]["flags"] & 64 and "Manage Server" in refusal.payload["data"]["content"]
    assert store.get_settings(GUILD_ID) == {}


async def test_settings_apply_to_later_continuations(harness, svc, store):
    await harness.slash("settings", subcommand="set", key="model", value="poet", permissions=ADMIN_PERMISSIONS)
    await harness.slash("settings", subcommand="set", key="temperature", value="0.3",
                        permissions=ADMIN_PERMISSIONS)
    assert store.get_settings(GUILD_ID) == {"model": "poet", "temperature": 0.3}
    reply = harness.replies()[-1]
    assert reply.ephemeral and reply.text == "Settings for this server: model=poet, temperature=0.3"
    await harness.slash("settings", subcommand="set", key="temperature", value="hot",
                        permissions=ADMIN_PERMISSIONS)
    assert "must be a number" in harness.replies()[-1].text and harness.replies()[-1].ephemeral
    await harness.slash("continue", prompt="Hello", length=20)
    (gen,) = rows(store)
    assert (gen.model, gen.model_version, gen.params["temperature"]) == ("poet", 2, 0.3)


async def test_disallowed_channel_is_refused(harness, store):
    store.set_setting("guild", GUILD_ID, "allowed_channels", ["1"])
    await harness.slash("continue", prompt="x", length=5)
    assert harness.adapter.kinds() == ["defer", "delete", "followup"]
    assert "not enabled in this channel" in harness.calls[-1].content
    assert rows(store) == []


async def test_retry_and_continue_buttons_make_child_generations(harness, svc, store):
    await harness.slash("continue", prompt="Begin", length=30, temperature=0.7)
    (gen,) = rows(store)
    message = harness.last_message()
    harness.adapter.reset()
    await harness.press(f"gw:retry:{gen.id}", message)
    assert harness.adapter.kinds()[0] == "defer"
    await harness.press(f"gw:more:{gen.id}", message)
    retry, more = sorted(rows(store), key=lambda g: g.id)[1:]
    assert retry.parent_id == gen.id and retry.prompt == "Begin" and retry.params["temperature"] == 0.7
    assert more.parent_id == gen.id and more.prompt == "Begin" + gen.output


async def test_history_and_forget(harness, store):
    await harness.slash("continue", prompt="Mine", length=10)
    store.record_generation(model="bard", prompt="theirs", source="discord", user_id="42")
    harness.adapter.reset()
    await harness.slash("history")
    (reply,) = harness.replies()
    assert reply.ephemeral and "Mine" in reply.text and "theirs" not in reply.text
    await harness.slash("forget")
    assert "deleted 1 generations" in harness.replies()[-1].text
    assert rows(store, user_id=USER_ID) == [] and len(rows(store)) == 1


async def test_models_lists_cards(harness):
    await harness.slash("models")
    (reply,) = harness.replies()
    text = reply.text
    assert "**bard** v1 (default)" in text and "**poet** v2" in text and "1.2M params" in text


def test_command_schema_snapshot(slash_bot):
    from bot.service import SETTINGS

    cont = slash_bot.tree.get_command("continue").to_dict(slash_bot.tree)
    kind = {int: 4, float: 10, str: 3}  # Discord's INTEGER, NUMBER, STRING
    assert [(o["name"], o["type"], o["required"]) for o in cont["options"]] == [
        ("prompt", 3, True), ("model", 3, False)] + [(s.name, kind[s.type], False) for s in SETTINGS]
    assert cont["options"][1]["autocomplete"] is True
    names = sorted(c.name for c in slash_bot.tree.get_commands())
    assert names == ["continue", "forget", "history", "ignoreme", "models", "mydata", "optin", "retrain", "settings",
                     "story"]
    retrain = slash_bot.tree.get_command("retrain").to_dict(slash_bot.tree)
    assert str(retrain["default_member_permissions"]) == "8"  # administrator
    assert sorted(o["name"] for o in retrain["options"]) == ["cancel", "from-channel", "start", "status"]


async def test_model_option_autocompletes_from_the_cached_list(harness, slash_bot):
    from interactions import interaction_payload

    cog = slash_bot.get_cog("Ghostwrite")
    for _ in range(100):
        if cog.model_cache:
            break
        await asyncio.sleep(0.02)
    payload = interaction_payload("continue", [{"name": "prompt", "type": 3, "value": "x"},
                                               {"name": "model", "type": 3, "value": "PO", "focused": True}])
    payload["type"] = 4
    await harness.dispatch(payload)
    (answer,) = harness.calls
    assert answer.payload == {"type": 8, "data": {"choices": [{"name": "poet", "value": "poet"}]}}


async def test_every_setting_of_the_contract_is_a_continue_option_and_in_the_footer(harness, store):
    """/continue has an option per setting of the contract (min_p included, added there only)."""
    from test_settings_contract import example, typed

    from bot.service import SETTINGS

    values = {s.name: example(s) for s in SETTINGS}
    await harness.slash("continue", prompt="Every", **{s.name: typed(s, values[s.name]) for s in SETTINGS})
    (gen,) = rows(store)
    assert gen.status == "complete" and {k: gen.params[k] for k in values} == values
    footer = harness.replies()[-1].text.splitlines()[-1]
    assert all(s.show(s.footer, values) in footer for s in SETTINGS if s.footer), footer
    assert "min-p 0.5" in footer


async def test_every_server_setting_is_a_settings_key(harness, store):
    from test_settings_contract import example, typed

    from bot.service import SETTINGS, lookup_setting

    values = {s.name: example(s) for s in SETTINGS if s.server}
    for key, value in values.items():
        await harness.slash("settings", subcommand="set", key=key, value=str(typed(lookup_setting(key), value)),
                            permissions=ADMIN_PERMISSIONS)
        assert "Settings for this server" in harness.replies()[-1].text, harness.replies()[-1].text
    assert store.get_settings(GUILD_ID) == values
    await harness.slash("continue", prompt="Defaults")
    (gen,) = rows(store)
    assert {k: gen.params[k] for k in values} == values and gen.params["min_p"] == 0.5


async def test_the_models_card_defaults_apply_unless_the_server_or_the_user_sets_them(harness, svc, store):
    """Only explicitly set values are sent: a server's /settings and a user's option override the model
    card's defaults (a style sweep's), nothing else does."""
    svc.model_defaults = lambda name, version: {"temperature": 0.35} if name == "bard" else {}
    await harness.slash("continue", prompt="One", length=10)
    await harness.slash("settings", subcommand="set", key="top_k", value="5", permissions=ADMIN_PERMISSIONS)
    await harness.slash("continue", prompt="Two", length=10)
    await harness.slash("settings", subcommand="set", key="temperature", value="0.3",
                        permissions=ADMIN_PERMISSIONS)
    await harness.slash("continue", prompt="Three", length=10)
    await harness.slash("continue", prompt="Four", length=10, temperature=0.9)
    got = [(g.prompt, g.params["temperature"]) for g in sorted(rows(store), key=lambda g: g.id)]
    assert got == [("One", 0.35), ("Two", 0.35), ("Three", 0.3), ("Four", 0.9)]
