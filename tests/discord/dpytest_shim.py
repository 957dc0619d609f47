"""Make dpytest 0.7.0 work with discord.py 2.7.

dpytest 0.7.0 predates two payload fields discord.py now requires:

* reaction events carry ``type`` (and ``burst``): without them discord.py's parser raises
  ``KeyError: 'type'`` (CraftSpider/dpytest#129);
* roles carry ``colors``: ``Guild.create_role`` passes it on and dpytest's ``make_role`` rejects it, and
  discord.py sends ``permissions`` as a string.

``install()`` patches both, idempotently. ``make_bot()`` builds a bot the way dpytest's own conftest does.
Everything here touches dpytest's module globals only; discord.py itself is not patched.
"""

from __future__ import annotations

import functools
import typing

import discord
import discord.ext.test as dpytest
from discord.ext import commands
from discord.ext.test import backend, state

_INSTALLED = False


def _wrap_reaction(parse):
    @functools.wraps(parse)
    def wrapper(self, data):
        data.setdefault("type", 0)
        data.setdefault("burst", False)
        data.setdefault("burst_colors", [])
        return parse(self, data)

    return wrapper


def install() -> None:
    global _INSTALLED
    if _INSTALLED:
        return
    fake = state.FakeState
    fake.parse_message_reaction_add = _wrap_reaction(fake.parse_message_reaction_add)
    fake.parse_message_reaction_remove = _wrap_reaction(fake.parse_message_reaction_remove)

    original_make_role = backend.make_role

    @functools.wraps(original_make_role)
    def make_role(name, guild, id_num=-1, colour=0, color=None, permissions=104324161, hoist=False,
                  mentionable=False, **extra: typing.Any):
        colors = extra.pop("colors", None)
        if colors and not colour and color is None:
            colour = int(colors.get("primary_color") or 0)
        # Anything else discord.py adds later (icon, unicode_emoji, ...) is dropped: dpytest has no place for it.
        return original_make_role(name, guild, id_num=id_num, colour=colour, color=color,
                                  permissions=int(permissions), hoist=hoist, mentionable=mentionable)

    backend.make_role = make_role
    _INSTALLED = True


async def make_bot(extension: str | None = None, prefix: str = "!", **configure: typing.Any) -> commands.Bot:
    """A `commands.Bot` wired to dpytest, optionally with `extension` loaded. Pair with `teardown()`."""
    install()
    intents = discord.Intents.default()
    intents.members = True  # dpytest's fake members are None otherwise
    intents.message_content = True
    bot = commands.Bot(command_prefix=prefix, intents=intents)
    await bot._async_setup_hook()
    if extension:
        await bot.load_extension(extension)
    dpytest.configure(bot, **configure)
    return bot


async def teardown(bot: commands.Bot) -> None:
    await dpytest.empty_queue()
    for name in list(bot.extensions):
        await bot.unload_extension(name)


class EditLog:
    """Records every message edit the bot makes under dpytest (dpytest queues only the first send and does not
    dispatch ``on_message_edit``). ``edits`` holds ``(message_id, payload)`` in order."""

    def __init__(self) -> None:
        self.edits: list[tuple[int, dict]] = []
        from discord.ext.test import callbacks

        callbacks.set_callback(self._on_edit, "edit_message")

    async def _on_edit(self, channel, message, fields) -> None:
        params = fields.get("params")
        payload = dict(params.payload) if params is not None and params.payload else {}
        self.edits.append((message.id, payload))

    def contents(self, message_id: int | None = None) -> list[str]:
        return [p.get("content") for mid, p in self.edits if message_id is None or mid == message_id]


def stored_message(channel_id: int, message_id: int) -> dict | None:
    """dpytest's current copy of a message (after edits) as a raw dict."""
    for data in backend._cur_config.messages.get(channel_id, []):
        if int(data.get("id")) == int(message_id):
            return data
    return None
