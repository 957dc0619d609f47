"""What the adversarial battery feeds and how it judges (issue 16).

Values: the edges every option or variable must survive — tiny, huge, negative, NaN, ±inf, subnormal,
empty, unicode, undecodable bytes (as the surrogates Python gives them in argv and the environment) — and
whatever hypothesis draws around them.

The subjects come from the code and the README, not from a list kept here: `commands()` walks the real
typer app (every subcommand, every option and argument), `documented_env()` reads the README's two tables
of environment variables, the REPL's /set keys come from `bot.repl.commands.SET_KEYS` and the Discord
settings from `bot.discord.admin.SettingKey`. A new option, variable or key is in the battery the day it
exists; one the battery does not know how to call fails with a line saying what to add.

The verdict (`judge`): exit 0 or 2, never a traceback, an exit 2 is one `error:` line on stderr.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import traceback
from pathlib import Path

from hypothesis import HealthCheck
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
def examples(n: int) -> int:
    """n hypothesis examples, times GHOSTWRITE_BATTERY_SCALE (default 1) to search harder by hand."""
    return max(1, int(n * float(os.environ.get("GHOSTWRITE_BATTERY_SCALE", "1") or 1)))


RUNS = dict(deadline=None, derandomize=False, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                   HealthCheck.filter_too_much, HealthCheck.data_too_large])

EDGES = [
    "0", "-0", "1", "-1", "2", "0.5", "1.5", "10", "10.000001", "100000",
    "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e999", "-1e999",
    "1e-300", "-1e-300", "5e-324", "2.2250738585072014e-308", "1e-45", "1e308", "1.7976931348623157e308",
    "2147483648", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
    "18446744073709551616", "1" + "0" * 30, "9" * 5000,
    "", " ", "  3  ", "0x10", "1_000", "١٢٣", "½", "²", "1e", ".", "-", "--", "abc", "default",
    "é", "😀", "\u202e1", "a\tb", "a\nb", "\udcff", "\udc80abc", "x" * 10_000, "💩" * 500,
]
# undecodable bytes as Python shows them in argv, the environment and a piped REPL (surrogateescape);
# a Discord payload's JSON may also carry any lone surrogate ("\ud800")
BYTES = st.sampled_from(["\udc80", "\udcff", "\udce9"])
SURROGATES = st.one_of(BYTES, st.just("\ud800"))


def values(nul: bool = False, lone: bool = False) -> st.SearchStrategy[str]:
    """Text for an option, a setting or a variable. `nul`: may contain NUL (a pipe or Discord can carry
    it; argv and the environment cannot). `lone`: may contain any lone surrogate (only a JSON payload can
    carry one; bytes from a pipe arrive as surrogateescape's \\udc80-\\udcff)."""
    # (hypothesis' own characters leave out every surrogate, Cs: the ones a source can carry come from BYTES
    # or SURROGATES; naming a category list replaces hypothesis' default, so Cs is named here)
    blocked = ("Cs",) if nul else ("Cc", "Cs")
    text = st.text(st.one_of(st.characters(blacklist_categories=blocked), SURROGATES if lone else BYTES), max_size=24)
    if not nul:
        text = text.filter(lambda s: "\x00" not in s)
    return st.one_of(
        st.sampled_from(EDGES),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda x: f"{x:.3g}"),
        st.integers(-(2**80), 2**80).map(str),
        st.integers(-3, 300).map(str),  # (around what most options take)
        st.floats(-2, 20).map(lambda x: f"{x:.4g}"),
        text,
    )


# ---- the CLI --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Param:
    command: tuple[str, ...]
    name: str
    opts: list[str]  # ["--top-p"] for an option, [] for an argument
    flag: bool
    required: bool
    kind: str  # the annotation's name: int, float, str, Path, list[str], bool


def commands() -> dict[tuple[str, ...], list[Param]]:
    """Every leaf command of the real `ghostwrite` app and its parameters."""
    import typer.main

    from bot.cli import app

    root = typer.main.get_command(app)
    found: dict[tuple[str, ...], list[Param]] = {}

    def walk(cmd, path):
        if hasattr(cmd, "list_commands"):
            ctx = cmd.context_class(cmd)
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), path + (name,))
            return
        params = []
        for p in cmd.params:
            if p.name == "help":
                continue
            td = getattr(p, "type_descriptor", None)
            kind = getattr(getattr(td, "annotation", None), "__name__", None) or str(getattr(td, "annotation", ""))
            option = bool(p.opts and p.opts[0].startswith("-"))
            params.append(Param(path, p.name, [o for o in p.opts if o.startswith("--")] or p.opts if option else [],
                                bool(getattr(p, "is_flag", False)), bool(p.required), kind))
        found[path] = params

    walk(root, ())
    return found


@dataclasses.dataclass
class Outcome:
    args: list[str]
    code: int | None
    out: str
    err: str
    crash: str | None  # a traceback that escaped run()

    def __str__(self) -> str:
        shown = [a if len(a) < 60 else a[:57] + "..." for a in self.args]
        return (f"ghostwrite {shown!r} → exit {self.code}\n--- stdout\n{self.out[-1500:]}\n--- stderr\n"
                f"{self.err[-2500:]}" + (f"\n--- escaped\n{self.crash}" if self.crash else ""))


_one_at_a_time = threading.Lock()
_stuck: list = []


def invoke(args: list[str], env: dict | None = None, input: str | bytes | None = "", limit: float = 90.0) -> Outcome:
    """`ghostwrite ARGS` in this process (bot.cli.run, what the console script runs), with stdin, stdout and
    stderr captured and the environment overridden (None removes a variable). Fails if it has not returned
    within `limit` seconds: a hang."""
    from typer.testing import CliRunner

    from bot.cli import run

    box: dict = {}
    if _stuck:
        raise AssertionError(f"an earlier command is still running: {_stuck[0]!r}")

    def target():
        try:
            with CliRunner().isolation(input=input, env=env) as (out, err, _):
                try:
                    box["code"] = run(list(args))
                except SystemExit as e:
                    box["code"] = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                except BaseException:  # noqa: BLE001 - the battery reports it
                    box["crash"] = traceback.format_exc()
                finally:
                    for s in (sys_stdout(), sys_stderr()):
                        try:
                            s.flush()
                        except Exception:  # noqa: BLE001
                            pass
                    box["out"] = out.getvalue().decode("utf-8", "backslashreplace")
                    box["err"] = err.getvalue().decode("utf-8", "backslashreplace")
        except BaseException:  # noqa: BLE001 - e.g. an environment value the OS refuses
            box.setdefault("crash", traceback.format_exc())

    with _one_at_a_time:
        t = threading.Thread(target=target, daemon=True, name="battery-invoke")
        t.start()
        t.join(limit)
        if t.is_alive():
            _stuck.append(args)  # its thread still holds the swapped streams: every later call would fail
            raise AssertionError(f"ghostwrite {args!r} did not return within {limit:.0f} s (a hang)")
    return Outcome(list(args), box.get("code"), box.get("out", ""), box.get("err", ""), box.get("crash"))


def invoke_process(args: list[str], env: dict | None = None, input: str = "", limit: float = 300.0) -> Outcome:
    """`ghostwrite ARGS` as its own process (what needs real file descriptors: --nproc's workers)."""
    o = _run_group(args, env, input, limit)
    if o.code is None:
        raise AssertionError(f"ghostwrite {args!r} did not return within {limit:.0f} s (a hang)")
    return o


def invoke_server(args: list[str], env: dict | None = None, limit: float = 20.0) -> Outcome:
    """`ghostwrite ARGS` for a command that serves until stopped: what it did until uvicorn says it is serving
    (or within `limit` seconds). Still running then, it is stopped and its code is None."""
    return _run_group(args, env, "", limit, serving=(b"Application startup complete",))


def _run_group(args: list[str], env: dict | None, input: str, limit: float, serving: tuple[bytes, ...] = ()) -> Outcome:
    """`ghostwrite ARGS` as its own process group (worker processes included), stopped (SIGTERM, then SIGKILL)
    if it has not returned within `limit` seconds, or once its stderr shows one of `serving` (code None);
    nothing it started outlives the call. Output goes to files (no pipe to fill, readable while it runs)."""
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    full = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    with tempfile.TemporaryDirectory(prefix="battery-run-") as tmp:
        out_path, err_path, in_path = (Path(tmp) / n for n in ("out", "err", "in"))
        in_path.write_bytes(input.encode("utf-8", "surrogateescape"))
        with open(in_path, "rb") as fin, open(out_path, "wb") as fout, open(err_path, "wb") as ferr:
            p = subprocess.Popen([sys.executable, "-m", "bot.cli", *args], env=full, stdin=fin, stdout=fout,
                                 stderr=ferr, start_new_session=True)
        code: int | None = None
        try:
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:
                try:
                    code = p.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if serving and any(s in err_path.read_bytes() for s in serving):
                    break
            if code is None:
                _signal_group(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    _signal_group(p.pid, signal.SIGKILL)
                    p.wait(timeout=15)
        finally:
            _signal_group(p.pid, signal.SIGKILL)  # whatever it started and left behind
            if p.poll() is None:
                p.kill()
                p.wait(timeout=15)
        out, err = out_path.read_bytes(), err_path.read_bytes()
    return Outcome(list(args), code, out.decode("utf-8", "backslashreplace"),
                   err.decode("utf-8", "backslashreplace"), None)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def sys_stdout():
    import sys

    return sys.stdout


def sys_stderr():
    import sys

    return sys.stderr


def judge(o: Outcome, codes=(0, 2)) -> None:
    """Exit 0 or 2 (or `codes`), no traceback anywhere, and an exit 2 says why in one `error:` line."""
    assert o.crash is None, str(o)
    assert "Traceback (most recent call last)" not in o.out + o.err, str(o)
    assert o.code in codes, str(o)
    if o.code == 2:
        lines = [ln for ln in o.err.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("error:")]
        assert len(errors) == 1 and lines[-1] == errors[0], str(o)


def check_generations(o, world) -> None:
    """Printed ⇔ stored: every JSON line printed is a row of the database with that text, or was
    spooled with a note on stderr."""
    import json

    from bot.store import Store

    printed = [json.loads(ln) for ln in o.out.splitlines() if ln.startswith("{")]
    assert printed, str(o)
    with Store(world["db"]) as store:
        for g in printed:
            if g["id"] is None:
                assert "not stored yet" in o.err, str(o)
                continue
            row = store.get(g["id"])
            assert row is not None and row.output == g["text"] and row.status == g["status"], str(o)


# ---- the README's environment variables -----------------------------------------------------------------
def documented_env() -> list[str]:
    """Every variable in README's "Settings (environment)" table and the Discord configuration table
    (`GHOSTWRITE_DISCORD_COOLDOWN_RATE` / `_COOLDOWN_PER`: the short form takes the Discord prefix)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    names: list[str] = []
    for section in ("## Settings (environment)", "#### Configuration"):
        start = text.index(section)
        end = text.find("\n#", start + len(section))
        for row in text[start:end].splitlines():
            if not row.startswith("| `"):
                continue
            first = row.split("|")[1]
            for token in re.findall(r"`([A-Z_][A-Z0-9_]*)`", first):
                name = token if not token.startswith("_") else "GHOSTWRITE_DISCORD" + token
                if name not in names:
                    names.append(name)
    return names
