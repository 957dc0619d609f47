"""The settings contract (generator/generation/settings.py) walked setting by setting: SamplingSettings, the
REPL's /set, the Discord /continue options and /settings keys, the CLI's `generate` options, the footer and
the JSON schema all expose every declared setting with the contract's bounds and default. A setting added
to the contract is checked here without a line added."""

from __future__ import annotations

import json
import math

import pytest

from bot.service import SETTINGS, GhostwriteError, SamplingSettings, footer_parts, json_schema, settings_line


def ids(settings=SETTINGS):
    return [s.name for s in settings]


NUMERIC = [s for s in SETTINGS if s.type in (int, float)]


TEXTS = [s for s in SETTINGS if s.type is str and not s.choices]  # free text and lists of texts


def example(s):
    """A value of `s` inside its bounds that is not its default (and not an "off" value)."""
    if s.many:
        return ["thee=+2"] if s.item == "bias" else ["THE END"]
    if s.type is str and not s.choices:
        return ";:"
    if s.choices:
        return next(c for c in s.choices if c != s.default)
    if s.type is int:
        return (s.low or 0) + 1 if s.default is None else s.default + 1
    lo, hi = s.low, s.high
    return (lo + s.default) / 2 if s.default > lo else (s.default + hi) / 2


def typed(s, value):
    """`value` as typed after /set (a list as `a | b`)."""
    return " | ".join(value) if s.many else value


def edges(s, unit=None):
    """(accepted, refused) values at and just past each bound of `s`."""
    ok, bad = [], []
    hi = s.cap(unit)
    step = 1 if s.type is int else 1e-6
    if s.low is not None:
        (bad if s.low_open else ok).append(s.low)
        bad.append(s.low - step)
    if hi is not None:
        (bad if s.high_open else ok).append(hi)
        bad.append(hi + step)
    return ok, bad


# ---- SamplingSettings ----------------------------------------------------------------------------------
def test_sampling_settings_fields_and_defaults_are_the_declarations():
    assert SamplingSettings().to_dict() == {s.name: s.default for s in SETTINGS}
    assert list(SamplingSettings.from_dict({}).to_dict()) == ids()


@pytest.mark.parametrize("s", NUMERIC, ids=ids(NUMERIC))
def test_every_bound_is_enforced_with_one_line(s):
    unit = "chars" if s.per_unit else None
    ok, bad = edges(s, unit)
    for v in ok:
        assert getattr(SamplingSettings.from_dict({s.name: v}), s.name) == v
    for v in bad + ([math.nan] if s.type is float else []):
        with pytest.raises(GhostwriteError, match=f"^{s.name} must be") as e:
            SamplingSettings.from_dict({s.name: v})
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("s", TEXTS, ids=ids(TEXTS))
def test_text_settings_refuse_bad_texts_with_one_line(s):
    bad = [["ok", ""], 7, "x" * 10_000] if s.many else [7, "x" * 10_000]
    if s.item == "bias":
        bad += [["thee"], ["thee=lots"], ["=2"], ["thee=+1000"]]
    for v in bad:
        with pytest.raises(GhostwriteError, match=f"^{s.name} ") as e:
            SamplingSettings.from_dict({s.name: v})
        assert "\n" not in str(e.value)
    if s.many:  # one text holds several items (the REPL, Discord), \\n is a newline
        assert getattr(SamplingSettings.from_dict({s.name: "a=1 | b\\n=2"}), s.name) == ["a=1", "b\n=2"]
        assert getattr(SamplingSettings.from_dict({s.name: ""}), s.name) == []


@pytest.mark.parametrize("unit", [u for s in SETTINGS if s.per_unit for u in s.per_unit])
def test_per_unit_caps(unit):
    (s,) = [s for s in SETTINGS if s.per_unit]
    cap = s.per_unit[unit]
    assert SamplingSettings.from_dict({s.name: cap, "unit": unit}).to_dict()[s.name] == cap
    with pytest.raises(GhostwriteError, match=f"between 1 and {cap:,} {unit}"):
        SamplingSettings.from_dict({s.name: cap + 1, "unit": unit})


def test_choices_are_enforced():
    shortest = {o.name: o.low for o in SETTINGS if o.per_unit}  # fits every unit
    for s in SETTINGS:
        for c in s.choices:
            assert getattr(SamplingSettings.from_dict({**shortest, s.name: c}), s.name) == c
        if s.choices:
            with pytest.raises(GhostwriteError, match=f"{s.name} must be one of"):
                SamplingSettings.from_dict({s.name: "nonsense"})


def test_json_schema_says_the_bounds():
    props = json_schema()["properties"]
    assert list(props) == ids()
    for s in SETTINGS:
        p = props[s.name]
        assert p["default"] == (list(s.default) if s.many else s.default)
        if s.low is not None:
            assert p["exclusiveMinimum" if s.low_open else "minimum"] == s.low
        if s.high is not None:
            assert p["exclusiveMaximum" if s.high_open else "maximum"] == s.high
        if s.choices:
            assert p["enum"] == list(s.choices)


def test_footer_and_settings_line_show_every_shown_setting():
    values = {s.name: example(s) for s in SETTINGS}
    foot, line = " · ".join(footer_parts(values)), settings_line(values)
    for s in SETTINGS:
        if s.footer:
            assert s.show(s.footer, values) in foot, s.name
        if s.line:
            assert s.show(s.line, values) in line, s.name
    assert footer_parts({s.name: s.default for s in SETTINGS if s.is_off(s.default)}) == []  # off: not shown


# ---- the REPL's /set -----------------------------------------------------------------------------------
def test_repl_set_takes_every_setting_by_every_spelling():
    from bot.repl.commands import SET_KEYS

    assert set(SET_KEYS.values()) == set(ids())
    for s in SETTINGS:
        assert all(SET_KEYS[w] == s.name for w in s.spellings)


@pytest.mark.parametrize("s", SETTINGS, ids=ids())
def test_repl_set_bounds_are_the_contract(s):
    from test_repl import make, one_line

    from bot.repl import commands

    session = make()
    commands.handle(session, f"/set {s.shown_name} {typed(s, example(s))}")
    out = one_line(session)
    assert session.settings[s.name] == example(s), out
    if s.type not in (int, float):
        return
    ok, bad = edges(s, session.settings.get("unit"))
    for v in ok:
        commands.handle(session, f"/set {s.name} {v!r}")
        out = one_line(session)
        assert session.settings[s.name] == v, out
    for v in bad:
        before = dict(session.settings)
        commands.handle(session, f"/set {s.name} {v!r}")
        assert f"{s.name} must be" in one_line(session) and session.settings == before


def test_repl_sends_every_setting_with_the_prompt():
    from test_repl import FakeService, make

    from bot.repl import commands

    svc = FakeService()
    session = make(svc)
    values = {s.name: example(s) for s in SETTINGS}
    for s in SETTINGS:
        commands.handle(session, f"/set {s.shown_name} {typed(s, values[s.name])}")
    commands.handle(session, "Once")
    assert {k: svc.requests[-1].settings[k] for k in values} == values


# ---- Discord -------------------------------------------------------------------------------------------
def test_discord_continue_has_every_setting_with_the_contract_bounds():
    pytest.importorskip("discord")
    from bot.discord.cog import Ghostwrite
    from bot.discord.options import DISCORD_INT_MAX

    params = {p.name: p for p in Ghostwrite.continue_.app_command.parameters}
    for s in SETTINGS:
        p = params[s.name]
        default = s.word(None) if s.default is None else str(s.default).replace("\n", "\\n")
        assert not p.required and f"default {'none' if s.many else default}" in p.description
        if s.choices:
            assert [c.value for c in p.choices] == list(s.choices)
            continue
        assert p.min_value == s.low
        hi = min(s.high, DISCORD_INT_MAX) if s.type is int and s.high is not None else s.high
        assert p.max_value == hi, s.name


def test_discord_settings_keys_are_the_server_settings():
    pytest.importorskip("discord")
    from bot.discord.cog import Ghostwrite

    (key,) = [p for p in Ghostwrite.settings_set.app_command.parameters if p.name == "key"]
    assert [c.value for c in key.choices] == ["model", *(s.name for s in SETTINGS if s.server), "mentions", "persona",
                                              "metadata_only"]


@pytest.mark.parametrize("s", NUMERIC, ids=ids(NUMERIC))
def test_discord_settings_values_are_read_as_the_contract_type(s):
    pytest.importorskip("discord")
    from bot.discord.options import parse_value

    assert parse_value(s.name, str(example(s))) == example(s)
    assert type(parse_value(s.name, str(example(s)))) is s.type
    with pytest.raises(GhostwriteError, match=s.name):
        parse_value(s.name, "lots")


# ---- the CLI's generate ----------------------------------------------------------------------------------
def _generate():
    import typer

    from bot.cli import app

    return typer.main.get_command(app).commands["generate"]


def test_cli_generate_help_lists_every_setting():
    from typer.testing import CliRunner

    from bot.cli import app

    out = CliRunner().invoke(app, ["generate", "--help"], env={"COLUMNS": "200"}).output
    for s in SETTINGS:
        assert all(flag in out for flag in s.flags), s.name
        shown = str(s.default).replace("\n", "\\n")
        assert s.help in out and (s.default is None or s.many or f"[default: {shown}]" in out
                                   or f"[default: ({shown})]" in out), s.name


@pytest.mark.parametrize("s", SETTINGS, ids=ids())
def test_cli_generate_options_are_the_contract(s):
    from typer import BadParameter  # click's (vendored by newer typer)

    cmd = _generate()
    (p,) = [p for p in cmd.params if p.name == s.name]
    assert set(s.flags) <= set(p.opts) and p.default == s.default and s.help in p.help
    long = s.flags[0]

    def parsed(value):
        return cmd.make_context("generate", ["m", "p", f"{long}={value!s}"]).params[s.name]

    if s.many:  # repeatable
        args = ["m", "p"] + [f"{long}={v}" for v in example(s) * 2]
        assert cmd.make_context("generate", args).params[s.name] == example(s) * 2
        with pytest.raises(BadParameter, match=f"{s.name} must"):
            parsed("")
        return
    assert parsed(example(s)) == example(s)
    if s.type is str and not s.choices:
        return
    if s.type not in (int, float):
        with pytest.raises(BadParameter, match=f"{s.name} must be one of"):
            parsed("nonsense")
        return
    ok, bad = edges(s)
    for v in ok:
        assert parsed(v) == v
    for v in bad:
        with pytest.raises(BadParameter, match=f"{s.name} must be"):
            parsed(v)


def test_cli_generate_passes_every_setting_to_the_service(tiny_model, capsys):
    from bot.cli import run

    values = {s.name: example(s) for s in SETTINGS}
    args = ["generate", "tiny", "KING:", "--json"] + [f"{s.flags[0]}={v}" for s in SETTINGS
                                                     for v in (values[s.name] if s.many else [values[s.name]])]
    assert run(args) == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "complete" and {k: out["settings"][k] for k in values} == values
    assert "--min-p=0.5" in args  # (min_p: added to the contract and the sampler only)
