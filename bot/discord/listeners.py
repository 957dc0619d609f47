"""What the Cog hears without a command: mentions of the bot (a continuation of the text after it), a member's
message in a story's thread (story.py), and 👍/👎 reactions (votes on the continuation a message carries).
Nothing from bots, nothing from members who asked to be ignored."""

from __future__ import annotations

import logging
import re
import typing

import discord

from bot.discord.compat import RED, commands
from bot.discord.errors import Refused
from bot.discord.replies import MessageSurface

log = logging.getLogger("ghostwrite.discord")

FEEDBACK = {"👍": 1, "👎": -1}
_SKIN_TONES = re.compile("[\U0001F3FB-\U0001F3FF]")


def feedback_value(emoji: str) -> int | None:
    return FEEDBACK.get(_SKIN_TONES.sub("", emoji).replace("\ufe0f", ""))


class ListenersMixin:
    """Mixed into the Ghostwrite Cog."""

    # ------------------------------------------------------------------ mentions
    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.webhook_id is not None or self.closing or self.bot.user is None \
                or self._executor is None:  # (a webhook: our own persona's posts among them)
            return
        mentioned = self.bot.user.id in message.raw_mentions  # an explicit @mention, not a reply ping
        in_thread = isinstance(message.channel, discord.Thread)
        if not mentioned and not in_thread:
            return
        if await self.ignored(message.author.id):
            return
        if in_thread and await self.story_message(message, mentioned):
            return
        if not mentioned:
            return
        if RED and message.guild and await self.bot.cog_disabled_in_guild(self, message.guild):  # pragma: no cover
            return
        ctx = await self.bot.get_context(message)
        if ctx.valid:  # a command that happens to use a mention prefix
            return
        text = re.sub(rf"<@!?{self.bot.user.id}>", "", message.content).strip()
        if not text:
            return
        guild_id = message.guild.id if message.guild else None
        try:
            home = (message.channel.parent_id or message.channel.id) if in_thread else message.channel.id
            settings = await self.settings_for(guild_id, home)
        except Refused:
            return
        if settings.get("mentions") is False or (guild_id and not self.channel_allowed(settings, home)):
            return
        await self.run_generation(MessageSurface(message), message.author, guild_id, message.channel.id, text,
                                  settings_channel=home)

    # ------------------------------------------------------------------ feedback
    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        await self._vote(payload, add=True)

    @commands.Cog.listener()
    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        await self._vote(payload, add=False)

    async def _vote(self, payload: discord.RawReactionActionEvent, *, add: bool) -> None:
        value = feedback_value(str(payload.emoji))
        me = self.bot.user
        if value is None or (me is not None and payload.user_id == me.id) or self._executor is None:
            return
        if payload.member is not None and payload.member.bot:
            return
        if await self.ignored(payload.user_id):
            return
        try:
            gen = await self.io(self.svc.find_by_message, payload.message_id)
            if gen is None:
                return
            emoji = "👍" if value > 0 else "👎"
            if add:
                await self.io(self.svc.vote, gen.id, payload.user_id, value, emoji)
            else:
                await self.io(self.svc.unvote, gen.id, payload.user_id, emoji)
        except Exception:
            log.exception("could not record a reaction on message %s", payload.message_id)


    if typing.TYPE_CHECKING:  # provided by the Cog
        bot: typing.Any
        svc: typing.Any
        closing: bool
        _executor: typing.Any

        async def io(self, fn, *args, **kwargs): ...

        async def ignored(self, user_id: int) -> bool: ...

        async def story_message(self, message, mentioned: bool) -> bool: ...

        async def settings_for(self, guild_id, channel_id) -> dict: ...

        def channel_allowed(self, settings: dict, channel_id) -> bool: ...

        async def run_generation(self, *args, **kwargs): ...
