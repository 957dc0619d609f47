"""Every option and argument of every `ghostwrite` command, fed the battery's values (battery.py): exit 0
or 2, never a traceback, never a hang, an exit 2 is one line; a generation that prints is stored (or
spooled, with a note on stderr).

Commands are driven in this process through `bot.cli.run` (what the console script calls). The ones that
train, start a job or connect to Discord (`HEAVY`) and the ones that serve until stopped (`LONG_RUNNING`) only
have their command line parsed in the quick part (the option callbacks and ranges that refuse junk before any
work); the `slow` part runs them for real, with everything but the value under test kept small (a server in its
own process group, stopped after a few seconds). A few real subprocesses at the end check that the
console script itself keeps the contract.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from battery import RUNS, check_generations, commands, examples, invoke, invoke_process, invoke_server, judge, values
from hypothesis import assume, given, settings

COMMANDS = commands()
HEAVY = {("train",), ("retrain",), ("bot",), ("corpus", "get")}  # training, a job, Discord, downloads
# Commands that serve until stopped: a value they accept starts a server that never returns, so they are never
# drawn as a one-shot command. The quick part parses their command line; the slow part runs each in its own
# process group and stops it after SERVING_S seconds: by then it has refused the value (one line, exit 2) or
# says it is serving (battery.invoke_server).
LONG_RUNNING = {("serve",)}
SERVING_S = 20.0
# required arguments, by name; per command where one name means something else there
ARGS = {"model": "tiny", "prompt": "To be", "corpus": "{corpus}", "paths": "{corpus}", "name": "battery-corpus",
        "text": "king", "gen_id": "1", "user": "battery-nobody"}
PER_COMMAND = {("models", "rm"): {"model": "battery-no-model"}, ("corpus", "rm"): {"name": "battery-no-corpus"},
               # a text file is never an image: the shared tiny model's avatar is never written
               ("models", "set-avatar"): {"image": "{corpus}"},
               ("retrain",): {"model": "battery-retrain", "corpus": "battery-no-corpus"}}
# what keeps a run cheap and judgeable: a short generation as JSON, no confirmation to wait for
BASE_OPTIONS = {("generate",): ["--length=8", "--json"], ("logs", "forget"): ["--yes"], ("eval",): ["--json"],
                ("train",): ["--name=battery-train", "--preset=tiny", "--max-steps=1", "--max-time=3", "--batch-size=2",
                             "--seq-len=8", "--json", "--quiet"],
                ("serve",): ["--port=0"]}  # any free port: never one another run holds
CASES = [(path, p) for path, params in COMMANDS.items() for p in params if not p.flag]


def case_id(case) -> str:
    path, p = case
    return " ".join(path) + ":" + (p.opts[0] if p.opts else p.name)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model):
    """A database of the battery's own, a small corpus file, and a working folder to run in (relative
    paths a value names land there, never in the checkout)."""
    root = tmp_path_factory.mktemp("battery")
    corpus = root / "small.txt"
    corpus.write_text(("The king said to the queen that the night was long.\n" * 3 + "\n") * 12, encoding="utf-8")
    db = f"sqlite:///{root / 'battery.db'}"
    return {"root": root, "corpus": str(corpus), "db": db, "env": {"GHOSTWRITE_DATABASE_URL": db}}


def command_line(path, param, value, world) -> list[str]:
    args = dict(ARGS, **PER_COMMAND.get(path, {}))
    opts = list(BASE_OPTIONS.get(path, []))
    positional = []
    for p in COMMANDS[path]:
        if p.flag:
            continue
        if p is param:
            v = value
        elif p.required or (not p.opts and p.name in args):  # required, or an optional argument we know
            if p.name not in args:
                pytest.fail(f"the battery does not know how to call `ghostwrite {' '.join(path)}`: "
                            f"add its argument {p.name!r} to ARGS in {__file__}")
            v = args[p.name].format(corpus=world["corpus"])
        else:
            continue
        if p.opts:
            opts = [o for o in opts if not o.startswith(p.opts[0] + "=")]
            opts += [f"{p.opts[0]}={v}"] if p.opts[0].startswith("--") else [p.opts[0], v]
        else:
            positional.append(v)
    return [*path, *opts, "--", *positional]


def existing_names() -> set[str]:
    from generator.corpora.corpus import list_corpora
    from generator.registry import list_models

    return {c["name"] for c in list_models(all_versions=True)} | {c.name for c in list_corpora()}


def harmless(path, value) -> bool:
    """Never let a drawn value name something real to delete or train over."""
    if path in (("models", "rm"), ("corpus", "rm"), ("retrain",)) or path == ("train",):
        v = value.strip().split("@")[0]
        return v not in existing_names() and not os.path.exists(value)
    return True


def exercise(path, param, value, world, parse_only: bool, process: bool = False) -> None:
    args = command_line(path, param, value, world)
    if path in LONG_RUNNING and not parse_only:
        o = invoke_server(args, env={**world["env"], "GHOSTWRITE_API_KEYS": None}, limit=SERVING_S)
        judge(o, codes=(0, 2, None))  # None: still serving when stopped
        assert o.code is not None or "serving on" in o.out, str(o)
        return
    if parse_only:
        import typer.main

        from bot.cli import app

        leaf = typer.main.get_command(app)
        for name in path:
            leaf = leaf.get_command(leaf.context_class(leaf), name)
        errors = sys.modules[__import__("typer").BadParameter.__module__]
        try:
            leaf.make_context(" ".join(path), args[len(path):])
        except errors.UsageError:
            pass  # bot.cli.run makes it one line, exit 2 (test_usage_errors_are_one_line)
        return
    o = (invoke_process if process else invoke)(args, env=world["env"], input="")
    judge(o, codes=(0, 2))
    if path == ("generate",) and o.code == 0:
        check_generations(o, world)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] not in HEAVY | LONG_RUNNING], ids=case_id)
@settings(max_examples=examples(4), **RUNS)
@given(value=values())
def test_every_option_takes_any_value(case, value, world, monkeypatch):
    path, param = case
    assume(harmless(path, value))
    monkeypatch.chdir(world["root"])
    exercise(path, param, value, world, parse_only=False)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in HEAVY | LONG_RUNNING], ids=case_id)
@settings(max_examples=examples(6), **RUNS)
@given(value=values())
def test_heavy_commands_parse_any_value(case, value, world, monkeypatch):
    path, param = case
    monkeypatch.chdir(world["root"])
    exercise(path, param, value, world, parse_only=True)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if c[0] not in HEAVY | LONG_RUNNING], ids=case_id)
@settings(max_examples=examples(25), **RUNS)
@given(value=values())
def test_every_option_takes_any_value_long(case, value, world, monkeypatch):
    path, param = case
    assume(harmless(path, value))
    monkeypatch.chdir(world["root"])
    exercise(path, param, value, world, parse_only=False)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if c[0] in HEAVY | LONG_RUNNING], ids=case_id)
@settings(max_examples=examples(4), **RUNS)
@given(value=values())
def test_heavy_commands_take_any_value_for_real(case, value, world, monkeypatch):
    """The long part: heavy commands run for real, each in its own process (training kept to a tiny
    model for at most a few seconds; `bot` against a closed local port; `retrain` on a corpus that is
    not there). Values that are legitimate but only long (a 4096-wide model) are left out."""
    path, param = case
    assume(harmless(path, value))
    monkeypatch.chdir(world["root"])
    monkeypatch.setenv("GHOSTWRITE_DISCORD_API_BASE", "http://127.0.0.1:9/api/v10")
    if path == ("train",) and param.kind in ("int", "float"):
        from bot.cli.train import training_bytes

        try:
            x = int(float(value))
        except (ValueError, OverflowError):
            x = 0
        assume(not (param.name in ("hidden_size", "emb_size", "vocab_size", "batch_size", "seq_len", "num_layers")
                    and training_bytes(256, x, x, 1, x, 8) > 256 * 2**20))
        assume(not (param.name == "max_time" and x > 20))
    exercise(path, param, value, world, parse_only=False, process=True)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("case", [c for c in CASES if c[0][0] == "logs" and c[0] != ("logs", "forget")],
                         ids=case_id)  # (forget would delete from a database other tests share)
@settings(max_examples=examples(15), **RUNS)
@given(value=values())
def test_logs_options_on_postgres(case, value, world, monkeypatch):
    """The same values against PostgreSQL (what a filter, a limit or a date becomes in its SQL)."""
    url = os.environ.get("GHOSTWRITE_TEST_PG_URL")
    if not url:
        pytest.skip("GHOSTWRITE_TEST_PG_URL is not set")
    path, param = case
    monkeypatch.chdir(world["root"])
    o = invoke(command_line(path, param, value, world), env={"GHOSTWRITE_DATABASE_URL": url}, input="")
    judge(o, codes=(0, 2))


def test_the_battery_knows_every_command():
    """Every command can be called (its required arguments are known) and every non-flag parameter is
    in CASES: a new command or option is in the battery without editing it."""
    assert ("generate",) in COMMANDS and ("logs", "list") in COMMANDS and ("train",) in COMMANDS
    for path, params in COMMANDS.items():
        for p in params:
            if p.required and not p.opts:
                assert p.name in {**ARGS, **PER_COMMAND.get(path, {})}, (path, p.name)
    assert len(CASES) >= 50
    assert LONG_RUNNING <= set(COMMANDS) and HEAVY <= set(COMMANDS), "a command named here no longer exists"
    assert "--port=0" in BASE_OPTIONS[("serve",)]  # a drawn value for another option never takes a fixed port


def test_a_server_refuses_bad_input_at_once(world, monkeypatch):
    """`serve` on a port another server holds exited 3 after uvicorn's log lines, and `--log-level abc` was a
    KeyError traceback: both are one line, exit 2, before anything serves (each in its own process group,
    stopped after SERVING_S seconds: a refusal that never comes fails instead of hanging)."""
    import socket

    monkeypatch.chdir(world["root"])
    env = {**world["env"], "GHOSTWRITE_API_KEYS": None}
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        for args, needle in ((["serve", f"--port={port}"], "cannot serve on"),
                             (["serve", "--port=0", "--log-level=abc"], "--log-level"),
                             (["serve", "--port=0", "--host=192.0.2.1"], "without API keys")):
            o = invoke_server(args, env=env, limit=SERVING_S)
            judge(o)
            assert o.code == 2 and needle in o.err and "serving on" not in o.out, str(o)


@pytest.mark.parametrize("args", [
    ["generate", "tiny", "x", "--length", "abc"], ["generate", "tiny", "x", "--bogus"], ["logs", "list", "--limit=0"],
    ["train", "x", "--max-time", "nan"], ["train", "x", "--max-time", "inf"], ["train", "x", "--lr", "0"],
    ["train", "x", "--hidden-size", "16384"], ["eval", "tiny", "--streams", "0"], ["retrain", "tiny", "--corpus", "x",
                                                                                     "--max-time", "nan"],
    ["bot", "--shards", "-1"], ["bot", "--guild", "0"], ["logs", "show", "99999999999999999999"],
    ["generate", "tiny", "x", "--seed", str(2**63 - 1), "-n", "2"], ["train", "x", "--nproc", "256"],
    ["models", "show", "../../etc"], ["models", "show", "x" * 300], ["eval", "tiny", "--text", "x" * 5000],
])
def test_usage_errors_are_one_line(args, world, monkeypatch):
    """Typer's usage errors used to be a framed box of five lines; NaN or inf in --max-time a traceback
    (or 30 s of training lost); an id beyond int64 a database error."""
    monkeypatch.chdir(world["root"])
    o = invoke(args, env=world["env"])
    judge(o)
    assert o.code == 2 and o.out == "", str(o)  # refused before anything was done or printed


@pytest.mark.parametrize("args", [["logs", "list", "--since", "10000000d"], ["logs", "list", "--since", "0001-01-01"],
                                  ["logs", "list", "--since", "9999-12-31T23:59:59-10:00"],
                                  ["logs", "export", "--since", "9" * 5000 + "s", "--output", "-"],
                                  ["logs", "list", "--limit", "1000000000"]])
def test_logs_numbers_past_what_dates_and_the_database_hold(args, world, monkeypatch):
    """`--since 10000000d` overflowed datetime arithmetic (a traceback): a duration longer than the
    calendar means everything; `--limit` beyond SQL's integer is refused at parse time."""
    monkeypatch.chdir(world["root"])
    o = invoke(args, env=world["env"])
    judge(o)
    assert o.code == 0, str(o)


def test_training_that_cannot_fit_in_memory_is_refused_before_any_work(world, monkeypatch):
    """`--hidden-size 16384` grew past 19 GB and ran for minutes without one step."""
    monkeypatch.chdir(world["root"])
    o = invoke(["train", world["corpus"], "--name", "battery-huge", "--hidden-size", "16384", "--layers", "16"],
               env=world["env"])
    judge(o)
    assert o.code == 2 and "GiB" in o.err, str(o)
    assert not (world["root"] / "battery-huge").exists()


@pytest.mark.parametrize("args,code", [(["generate", "tiny", "To be", "--top-p", "1e-300", "--length", "9"], 0),
                                       (["train", "nothing", "--max-time", "nan"], 2),
                                       (["logs", "list", "--since", "10000000d"], 0)])
def test_the_console_script_keeps_the_contract(args, code, world, tiny_model):
    """A few real processes: what a user runs."""
    env = {**os.environ, "GHOSTWRITE_DATABASE_URL": world["db"], "GHOSTWRITE_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, capture_output=True, text=True,
                       timeout=180, cwd=world["root"])
    assert p.returncode == code, p.stderr
    assert "Traceback" not in p.stderr
    if code == 2:
        assert len([ln for ln in p.stderr.splitlines() if ln.strip()]) == 1, p.stderr
    elif args[0] == "generate":
        assert len(p.stdout.rstrip("\n")) == 9, (p.stdout, p.stderr)  # what was asked: 9 characters
