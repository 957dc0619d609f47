"""The sampling settings on Discord, derived from the settings contract (`bot.service.SETTINGS`): the options
of /continue (bounds as `commands.Range`, choices as a `Literal`, descriptions with the default), the
keys of /settings set and how their values are read. A setting added to the contract shows up here
without an edit.

Discord's integer options carry 53 bits, so an integer bound above 2**53 - 1 (the seed's) is cut to it on
Discord; every other bound is the contract's. Discord's bounds are inclusive: a value on an open bound
(`top_p 0`) reaches the service, which refuses it with its one line.
"""

from __future__ import annotations

import typing

from bot.discord.compat import commands
from bot.service import SETTINGS, Setting

DISCORD_INT_MAX = 2**53 - 1
DESCRIPTION_MAX = 100  # characters Discord allows in an option's description

# what a server or channel may set as its default and the Retry button keeps (not the seed: every reply
# would be the same text)
SAMPLING_KEYS: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.server)
# on/off settings of a server or channel: whether a mention gets an answer, whether the model posts as its
# author (a webhook persona), whether only metadata is stored (no prompt, output or story text)
SWITCHES: tuple[str, ...] = ("mentions", "persona", "metadata_only")
# /settings set: the model, the sampling settings and the switches
SettingKey = typing.Literal[("model", *SAMPLING_KEYS, *SWITCHES)]  # type: ignore[valid-type]


def option_type(s: Setting) -> typing.Any:
    """The annotation of `s` as a hybrid command's option: its choices, or its type within its bounds."""
    if s.choices:
        return typing.Literal[s.choices]  # type: ignore[valid-type]
    lo, hi = s.low, s.high
    if s.type is int and hi is not None:
        hi = min(hi, DISCORD_INT_MAX)
    if lo is None and hi is None:
        return s.type
    cast = s.type
    return commands.Range[cast, None if lo is None else cast(lo), None if hi is None else cast(hi)]


def description(s: Setting) -> str:
    default = s.word(None) if s.default is None else s.default
    if s.many:  # a list: `a | b` in one text
        default = "none; several: a | b"
    elif isinstance(default, str):
        default = default.replace("\n", "\\n")
    text = f"{s.help}; default {default}"
    return text if len(text) <= DESCRIPTION_MAX else text[: DESCRIPTION_MAX - 1] + "…"


def with_settings(**described: str):
    """Decorate `async def cmd(self, ctx, *, prompt, model, settings)`: the command gets one optional
    keyword option per setting of the contract (after the ones `described`, which keep their own
    annotations), and `settings` receives them as a dict (None where not given).

    The signature is a real one, written from the contract like a dataclass's `__init__`: discord.py reads
    a command's signature again whenever a Cog copies its commands, so a `__signature__` set by hand would
    not survive (HybridAppCommand deletes it)."""

    def deco(impl: typing.Callable) -> typing.Callable:
        names = [s.name for s in SETTINGS]
        taken = {"self", "ctx", "impl", *described}
        if taken & set(names):
            raise TypeError(f"a setting is named like a parameter of {impl.__name__}: {sorted(taken & set(names))}")
        own = [n for n in described if n != "prompt"]  # keyword options with a default of None
        params = ", ".join(["prompt"] + [f"{n}=None" for n in own + names])
        passed = ", ".join(["prompt=prompt"] + [f"{n}={n}" for n in own])
        src = (f"async def {impl.__name__}(self, ctx, *, {params}):\n"
               f"    return await impl(self, ctx, {passed}, settings=dict({', '.join(f'{n}={n}' for n in names)}))\n")
        namespace: dict[str, typing.Any] = {}
        exec(src, {"impl": impl, "__name__": impl.__module__}, namespace)  # noqa: S102 - the contract's names only
        fn = namespace[impl.__name__]
        hints = typing.get_type_hints(impl, include_extras=True)
        fn.__annotations__ = {"ctx": hints["ctx"], **{n: hints[n] for n in described},
                              **{s.name: option_type(s) for s in SETTINGS}}
        fn.__qualname__, fn.__doc__, fn.__module__ = impl.__qualname__, impl.__doc__, impl.__module__
        from discord import app_commands

        return app_commands.describe(**described, **{s.name: description(s) for s in SETTINGS})(fn)

    return deco


def parse_value(key: str, raw: str) -> typing.Any:
    """A /settings value from text ('default'/'none' clears it): a sampling setting as the contract's type
    (its bounds are checked by the service with the settings it will be used with), a switch on/off, the
    model as written."""
    from bot.service import GhostwriteError

    raw = raw.strip()
    if raw.lower() in ("default", "none", "reset", ""):
        return None
    if key in SWITCHES:
        if raw.lower() in ("on", "yes", "true", "1", "enable", "enabled"):
            return True
        if raw.lower() in ("off", "no", "false", "0", "disable", "disabled"):
            return False
        raise GhostwriteError(f"{key} is on or off")
    s = next((s for s in SETTINGS if s.name == key), None)
    if s is not None and s.type in (int, float):
        try:
            return s.type(raw)
        except ValueError:
            what = "a whole number" if s.type is int else "a number"
            shown = repr(raw) if len(raw) <= 40 else repr(raw[:37] + "...")
            raise GhostwriteError(f"{key} must be {what}, not {shown}") from None
    if s is not None and s.type is str and not s.choices:  # stop, ban, bias (`a | b`), DRY's breakers
        return s.check(raw)
    if s is not None and s.choices and raw.lower() in s.choices:
        return raw.lower()
    return raw
