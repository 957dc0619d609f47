"""Every environment variable the README documents (its "Settings (environment)" table and the Discord
configuration table, read by battery.documented_env), set to the battery's values, under the command it
steers: exit 0 or 2, never a traceback, never a hang; a generation that prints is stored (or spooled with
a note). `GHOSTWRITE_THREADS=abc` used to be a traceback, a GHOSTWRITE_HOME that is a file too."""

from __future__ import annotations

import dataclasses
import os
import urllib.parse

import pytest
import torch
from battery import RUNS, check_generations, documented_env, examples, invoke, invoke_server, judge, values
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from generator.env import flag as env_flag

ENV = documented_env()
GENERATE = ["generate", "--length=8", "--json", "--", "tiny", "To be"]
# the command each variable steers; the rest steer generation
STEERS = {"GHOSTWRITE_MODEL": (["repl"], "To be\n"), "GHOSTWRITE_RECIPES": (["corpus", "recipes"], ""),
          "GHOSTWRITE_RECIPE_MIRROR": (["corpus", "get", "tinyshakespeare", "--force"], ""),
          "DISCORD_TOKEN": (["bot"], ""), "GHOSTWRITE_SHARD_COUNT": (["bot"], ""),
          "GHOSTWRITE_SHARD_IDS": (["bot"], ""), "GHOSTWRITE_API_KEYS": (["serve", "--port=0", "--host=192.0.2.1"], "")}
# variables the Discord bot reads: it runs against a Discord that is not there, so it must end with exit 2
BOT_ENV = ("DISCORD_TOKEN", "GHOSTWRITE_SHARD_COUNT", "GHOSTWRITE_SHARD_IDS")
DISCORD = {"GHOSTWRITE_DISCORD_API_BASE": "http://127.0.0.1:9/api/v10", "DISCORD_TOKEN": "battery.token.x"}
# the values a variable documented with a URL or a path also gets, besides the battery's
MORE = {"GHOSTWRITE_DATABASE_URL": ["sqlite://", "sqlite:////nonexistent/dir/x.db", "sqlite:///.",
                                    "postgresql://battery@127.0.0.1:9/db", "mysql://x@127.0.0.1:9/db", "foo://x"],
        "GHOSTWRITE_HOME": ["{file}", "{file}/below", ".", "home with spaces", "x" * 300, "\udcff"],
        "GHOSTWRITE_RECIPES": ["{file}", ".", os.pathsep.join(["a", "{file}"])],
        "GHOSTWRITE_RECIPE_MIRROR": ["http://127.0.0.1:9/", "file:///nonexistent", "file://{file}", "ftp://x"],
        "GHOSTWRITE_DISCORD_API_BASE": ["http://127.0.0.1:9/api", "ws://127.0.0.1:9", "http://", "notaurl"],
        "GHOSTWRITE_DISCORD_GATEWAY": ["ws://127.0.0.1:9/gateway", "http://127.0.0.1:9", "wss://"],
        "DISCORD_TOKEN": ["a b", "a\tb", "tök"], "GHOSTWRITE_METADATA_ONLY": ["1", "ON", "true", "no", "0"]}


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("battery-env")
    (root / "a-file").write_text("not a folder\n")
    db = f"sqlite:///{root / 'battery.db'}"
    return {"root": root, "file": str(root / "a-file"), "db": db}


@pytest.fixture(autouse=True)
def _torch_settings_restored():
    """configure_cpu obeys GHOSTWRITE_THREADS for the whole process: give the next test what it had."""
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    yield
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mkldnn


def safe(name: str, value: str) -> bool:
    """No value may make a run write outside the test's folder or reach past this machine."""
    if name == "GHOSTWRITE_HOME":
        return bool(value.strip()) and not os.path.isabs(value.strip()) and not value.strip().startswith("~")
    if name in ("GHOSTWRITE_DISCORD_API_BASE", "GHOSTWRITE_DISCORD_GATEWAY", "GHOSTWRITE_RECIPE_MIRROR",
                "GHOSTWRITE_DATABASE_URL"):
        try:
            host = urllib.parse.urlsplit(value.strip()).hostname
        except ValueError:
            return True
        return host in (None, "", "127.0.0.1")
    return True


def run_with(name: str, value: str, world) -> None:
    value = value.replace("{file}", world["file"])
    args, stdin = STEERS.get(name, (GENERATE, ""))
    env = {"GHOSTWRITE_DATABASE_URL": world["db"], name: value}
    if name.startswith("GHOSTWRITE_DISCORD_") or name in BOT_ENV:
        args, env = ["bot"], {**DISCORD, **env}  # logging in fails at once: nothing listens on port 9
    if name == "GHOSTWRITE_MODEL":
        env["GHOSTWRITE_DATABASE_URL"] = world["db"]
    if args[0] == "serve":  # a server never returns: its own process group, stopped after a few seconds
        o = invoke_server(args, env=env, limit=20.0)
        judge(o, codes=(2, None))  # None: keys accepted, serving (on a documentation-only address it cannot be)
        assert o.code is not None or "serving on" in o.out, str(o)
        return
    o = invoke(args, env=env, input=stdin)
    judge(o, codes=(0, 2))
    if name.startswith("GHOSTWRITE_DISCORD_") or name in BOT_ENV:
        assert o.code == 2, str(o)
    if args is GENERATE and o.code == 0 and name not in ("GHOSTWRITE_DATABASE_URL", "GHOSTWRITE_METADATA_ONLY"):
        check_generations(o, {"db": world["db"]})
    if name == "GHOSTWRITE_METADATA_ONLY" and o.code == 0:
        check_metadata_only(o, world, on=env_flag(name, False, {name: value}))
    if name == "GHOSTWRITE_DATABASE_URL" and o.code == 0:
        assert o.out.startswith("{") and ('"id": null' not in o.out or "not stored yet" in o.err), str(o)


def check_metadata_only(o, world, on: bool) -> None:
    """Metadata only: every printed generation is a row without its text; otherwise printed ⇔ stored."""
    import json

    from bot.store import Store

    if not on:
        check_generations(o, {"db": world["db"]})
        return
    printed = [json.loads(ln) for ln in o.out.splitlines() if ln.startswith("{")]
    assert printed, str(o)
    with Store(world["db"]) as store:
        for g in printed:
            row = store.get(g["id"]) if g["id"] is not None else None
            assert g["id"] is None or (row is not None and not row.output and not row.prompt), str(o)


def draw_and_run(name, data, world, monkeypatch) -> None:
    value = data.draw(st.one_of(values(), st.sampled_from(MORE.get(name, ["0"]))), label=name)
    assume(safe(name, value))
    monkeypatch.chdir(world["root"])  # a relative GHOSTWRITE_HOME lands here
    run_with(name, value, world)


@pytest.mark.parametrize("name", ENV)
@settings(max_examples=examples(3), **RUNS)
@given(data=st.data())
def test_every_variable_takes_any_value(name, data, world, monkeypatch):
    draw_and_run(name, data, world, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("name", ENV)
@settings(max_examples=examples(40), **RUNS)
@given(data=st.data())
def test_every_variable_takes_any_value_long(name, data, world, monkeypatch):
    draw_and_run(name, data, world, monkeypatch)


@pytest.mark.parametrize("name,value,needle", [
    ("GHOSTWRITE_THREADS", "abc", "GHOSTWRITE_THREADS"), ("GHOSTWRITE_THREADS", "-1", "GHOSTWRITE_THREADS"),
    ("GHOSTWRITE_ENGINE_THREADS", "x", "GHOSTWRITE_ENGINE_THREADS"), ("GHOSTWRITE_TORCHSCRIPT", "maybe", "TORCHSCRIPT"),
    ("GHOSTWRITE_CPU_BF16", "2", "GHOSTWRITE_CPU_BF16"), ("GHOSTWRITE_LOG_LEVEL", "BASIC_FORMAT", "LOG_LEVEL"),
    ("GHOSTWRITE_HOME", "{file}", "is a file"), ("GHOSTWRITE_HOME", "{file}/below", "Not a directory"),
    ("GHOSTWRITE_DATABASE_URL", "abc", "not a database URL"), ("GHOSTWRITE_DATABASE_URL", "foo://x", "foo"),
    ("GHOSTWRITE_RECIPES", "{file}", "not a folder"), ("GHOSTWRITE_RECIPES", "9" * 5000, "GHOSTWRITE_RECIPES"),
    ("GHOSTWRITE_HOME", "x" * 300, "GHOSTWRITE_HOME"),
])
def test_junk_in_a_variable_is_one_line(name, value, needle, world, monkeypatch):
    monkeypatch.chdir(world["root"])
    value = value.replace("{file}", world["file"])
    args = STEERS.get(name, (GENERATE, ""))[0]
    env = {"GHOSTWRITE_DATABASE_URL": world["db"], name: value}
    o = invoke(args, env=env)
    judge(o)
    assert o.code == 2 and needle in o.err, str(o)


@pytest.mark.parametrize("name,value", [
    ("GHOSTWRITE_DISCORD_MAX_QUEUE", "x"), ("GHOSTWRITE_DISCORD_EDIT_INTERVAL", "nan"),
    ("GHOSTWRITE_DISCORD_COOLDOWN_PER", "-1"), ("GHOSTWRITE_DISCORD_RETRAIN_MAX_TIME", "inf"),
    ("GHOSTWRITE_DISCORD_API_BASE", "notaurl"), ("GHOSTWRITE_DISCORD_GATEWAY", "http://x"), ("DISCORD_TOKEN", "a\tb"),
])
def test_junk_in_a_discord_variable_is_one_line_before_logging_in(name, value, world):
    o = invoke(["bot"], env={**DISCORD, name: value})
    judge(o)
    assert o.code == 2 and (name in o.err or "token" in o.err), str(o)
    assert "cannot reach Discord" not in o.err  # refused before any connection


def test_an_unreachable_discord_is_one_line(world):
    o = invoke(["bot"], env=DISCORD)
    judge(o)
    assert o.code == 2 and "cannot reach Discord" in o.err, str(o)


def test_every_discord_setting_is_documented():
    """The Discord configuration table lists every DiscordConfig field (a variable read but not
    documented is one the battery would not try)."""
    from bot.discord.config import ENV_PREFIX, DiscordConfig

    declared = {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(DiscordConfig)}
    assert declared <= set(ENV), sorted(declared - set(ENV))
