"""What members ask for about their data (Red's `forgetme` conventions): /ignoreme, /mydata, /optin.

- ``/ignoreme`` (``off`` to undo): the bot stops reading and storing the member's messages, mentions,
  commands, button presses and votes, in every server, until they undo it. Only /ignoreme, /mydata and
  /forget still answer them (a slash command says why it does nothing; a prefix command or a mention
  gets no answer at all).
- ``/mydata``: a JSON file, sent only to them, of everything stored about them.
- ``/optin`` (``off`` to undo): their messages in this server may go into a corpus an admin builds with
  ``/retrain from-channel``; nobody else's are ever read for it.

The choices live in the store (`member_prefs`), so every bot process (every shard) honours them at once.
"""

from __future__ import annotations

import io
import json
import typing

import discord
from discord import app_commands

from bot.discord.compat import commands
from bot.discord.replies import NO_MENTIONS

EXEMPT = frozenset({"ignoreme", "mydata", "forget", "help"})  # what an ignored member may still use
OnOff = typing.Literal["on", "off"]


class Ignored(commands.CheckFailure):
    """The member asked to be ignored: a slash command says so privately, a prefix command stays silent."""

    def __init__(self) -> None:
        super().__init__("You asked me to ignore you, so I read and store nothing of yours. "
                         "`/ignoreme off` undoes it.")


class PrivacyMixin:
    async def cog_check(self, ctx: commands.Context) -> bool:  # every command of this Cog
        root = ctx.command.root_parent or ctx.command if ctx.command else None
        if root is not None and root.name in EXEMPT:
            return True
        if await self.ignored(ctx.author.id):
            raise Ignored()
        return True

    async def ignored(self, user_id: int) -> bool:
        try:
            return await self.io(self.svc.is_ignored, user_id)
        except Exception:  # the store is down: nothing will be stored either way
            return False

    @commands.hybrid_command(name="ignoreme")
    @app_commands.describe(state="on (default): ignore me; off: read my messages again")
    async def ignoreme(self, ctx: commands.Context, state: OnOff = "on"):
        """Make Ghostwrite ignore you: it stops reading and storing your messages and commands."""
        on = state == "on"
        await self.io(self.svc.set_ignored, ctx.author.id, on)
        text = ("Done: I no longer read or store anything of yours, in any server. `/ignoreme off` undoes it; "
                "`/forget` deletes what was stored before.") if on else "Done: I read your messages and commands again."
        await ctx.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @commands.hybrid_command(name="mydata")
    async def mydata(self, ctx: commands.Context):
        """Get a file of everything Ghostwrite stored about you (only you see it)."""
        data = await self.io(self.svc.user_data, ctx.author.id)
        body = json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")
        counts = f"{len(data['generations'])} continuations, {len(data['votes'])} votes, " \
                 f"{len(data['stories_started'])} stories"
        file = discord.File(io.BytesIO(body), filename=f"ghostwrite-data-{ctx.author.id}.json")
        if ctx.interaction is None:  # a prefix command: privately, by direct message
            try:
                await ctx.author.send(f"Everything Ghostwrite stores about you: {counts}.", file=file,
                                      allowed_mentions=NO_MENTIONS)
            except discord.HTTPException:
                await ctx.reply("I can't send you a direct message; use `/mydata` instead.", mention_author=False,
                                allowed_mentions=NO_MENTIONS)
            return
        await ctx.send(f"Everything Ghostwrite stores about you: {counts}.", file=file, ephemeral=True,
                       allowed_mentions=NO_MENTIONS)

    @commands.hybrid_command(name="optin")
    @commands.guild_only()
    @app_commands.describe(state="on (default): my messages here may train a model; off: they may not")
    async def optin(self, ctx: commands.Context, state: OnOff = "on"):
        """Let an admin train a model on your messages in this server (/retrain from-channel)."""
        on = state == "on"
        await self.io(self.svc.set_opt_in, ctx.author.id, ctx.guild.id, on)
        text = ("Thanks: your messages in this server may go into a corpus built with `/retrain from-channel`. "
                "`/optin off` withdraws it.") if on else "Done: your messages here will not be used for training."
        await ctx.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    if typing.TYPE_CHECKING:  # provided by the Cog
        svc: typing.Any

        async def io(self, fn, *args, **kwargs): ...
