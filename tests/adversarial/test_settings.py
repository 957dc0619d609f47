"""Every REPL `/set` key (bot.repl.commands.SET_KEYS, every spelling) and every Discord setting
(bot.discord.admin.SettingKey) set to the battery's values, then a generation: a value is refused with
one line or accepted, and after it the next prompt generates and is stored, whatever was set before
(settings pile up across examples, as they do in a long session or a guild's history)."""

from __future__ import annotations

import asyncio
import sys
import typing
from pathlib import Path

import pytest
from battery import RUNS, examples, invoke, judge, values
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.repl.commands import SET_KEYS
from bot.repl.story import unescape_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "discord"))  # the interaction harness

REPL_KEYS = sorted(SET_KEYS)


@pytest.fixture(scope="module")
def repl_db(tmp_path_factory, tiny_model):
    return f"sqlite:///{tmp_path_factory.mktemp('battery-repl') / 'battery.db'}"


def one_line(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")  # the REPL reads lines: a value is one


def repl_round(key: str, value: str, db: str) -> None:
    from bot.store import Store

    script = f"/set {key} {one_line(value)}\nTo be\n".encode("utf-8", "surrogateescape")
    with Store(db) as store:
        before = store.list_generations(source="repl", limit=None)
    o = invoke(["repl", "tiny"], env={"GHOSTWRITE_DATABASE_URL": db}, input=script)
    judge(o, codes=(0,))
    lines = o.out.split("\n")
    assert len(lines) == 2 and lines[1] == "" and lines[0], str(o)  # one prompt in, one continuation out
    with Store(db) as store:
        after = store.list_generations(source="repl", limit=None)
    assert len(after) == len(before) + 1, str(o)
    assert after[0].status == "complete" and after[0].output == unescape_line(lines[0]), str(o)


@pytest.mark.parametrize("key", REPL_KEYS)
@settings(max_examples=examples(2), **RUNS)
@given(value=values(nul=True))
def test_every_repl_setting_takes_any_value(key, value, repl_db):
    repl_round(key, value, repl_db)


@pytest.mark.slow
@pytest.mark.parametrize("key", REPL_KEYS)
@settings(max_examples=examples(30), **RUNS)
@given(value=values(nul=True))
def test_every_repl_setting_takes_any_value_long(key, value, repl_db):
    repl_round(key, value, repl_db)


@pytest.mark.parametrize("line", ["/set top_p 1e-300", "/set temperature 5e-324", "/set penalty 1e-300",
                                  "/set top_k 99999999999999999999999999", "/set seed 9223372036854775807"])
def test_underflowing_repl_values_generate(line, repl_db):
    o = invoke(["repl", "tiny"], env={"GHOSTWRITE_DATABASE_URL": repl_db}, input=f"{line}\n/set length 9\nTo be\n")
    judge(o, codes=(0,))
    assert len(unescape_line(o.out.split("\n")[0])) == 9, str(o)  # (a newline in it is printed as \\n)


# ---- Discord ----------------------------------------------------------------------------------------------
def discord_keys() -> list[str]:
    from bot.discord.admin import SettingKey

    return list(typing.get_args(SettingKey))


@pytest.fixture(scope="module")
def guild(tmp_path_factory, tiny_model):
    """The real service and store behind the real command tree (the interaction harness of tests/discord)."""
    from bot.service import ContinuationService
    from bot.store import Store

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('battery-discord') / 'battery.db'}")
    svc = ContinuationService(store=store, default_model="tiny")
    yield svc, store
    svc.close()
    store.close()


async def _set_then_continue(svc, key: str, value: str) -> tuple[str, list]:
    from discord_helpers import make_host_bot
    from interactions import ADMIN_PERMISSIONS, Harness

    bot = await make_host_bot(svc)
    bot.owner_id = 1
    try:
        async with Harness(bot, timeout=60) as h:
            await h.slash("settings", subcommand="set", permissions=ADMIN_PERMISSIONS, key=key, value=value)
            answer = h.replies()[-1].text if h.replies() else ""
            h.adapter.reset()
            await h.slash("continue", prompt="To be")
            return answer, list(h.calls)
    finally:
        await bot.unload_extension("bot.discord")
        await bot.close()


def discord_round(guild, key: str, value: str) -> None:
    svc, store = guild
    before = store.list_generations(source="discord", limit=None)
    answer, calls = asyncio.run(_set_then_continue(svc, key, value))
    assert answer and "Traceback" not in answer and "internal error" not in answer.lower(), answer
    after = store.list_generations(source="discord", limit=None)
    shown = [c for c in calls if c.text is not None]
    assert len(after) == len(before) + 1, (answer, [c.text for c in shown])  # every /continue is stored ...
    gen = after[0]
    assert gen.status == "complete", (answer, gen.error, store.get_settings(gen.guild_id))  # ... and writes
    assert f"#{gen.id}" in shown[-1].text, [c.text for c in shown]


@pytest.mark.parametrize("key", discord_keys())
@settings(max_examples=examples(2), **RUNS)
@given(value=st.one_of(values(nul=True, lone=True), st.sampled_from(["tiny", "1e-300", "5e-324", "sentences", "on"])))
def test_every_discord_setting_takes_any_value(key, value, guild):
    discord_round(guild, key, value.strip() and value or "x")


@pytest.mark.slow
@pytest.mark.parametrize("key", discord_keys())
@settings(max_examples=examples(20), **RUNS)
@given(value=st.one_of(values(nul=True, lone=True), st.sampled_from(["tiny", "1e-300", "5e-324", "sentences", "on"])))
def test_every_discord_setting_takes_any_value_long(key, value, guild):
    discord_round(guild, key, value.strip() and value or "x")


def test_settings_that_only_fail_together_are_refused(guild):
    """`length 1000` (fine in characters) then `unit sentences` (fine alone) left every /continue of the
    guild failing: a setting is checked with the others it will be used with."""
    svc, store = guild
    discord_round(guild, "length", "1000")
    discord_round(guild, "unit", "sentences")  # refused: 1000 sentences is past the limit
    assert store.get_settings(900000000000000100).get("unit") != "sentences"
    discord_round(guild, "length", "default")


def test_a_long_footer_keeps_the_generation_id():
    """Found by the battery: settings shown at length (temp 4.94066e-324 · top-p 1e-300 · min-p ...) pushed
    the footer past its room and the cut took the end of `#182` (a vote or `logs show` needs it)."""
    from bot.discord.render import FOOTER_LIMIT, footer

    settings = {"temperature": 5e-324, "top_k": 87, "top_p": 1e-300, "repetition_penalty": 0.98,
                "length": 20_000, "unit": "paragraphs", "seed": 2**63 - 1}
    for status in ("complete", "interrupted"):
        line = footer("a-model-name-of-sixty-four-characters-which-is-the-longest-allowed", 123, settings,
                      status=status, generation_id=9_223_372_036_854_775_807)
        assert len(line) <= FOOTER_LIMIT and line.endswith(" · #9223372036854775807"), line
        assert ("interrupted" in line) == (status == "interrupted")
