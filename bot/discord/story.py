"""/story: a channel's running story. Members add lines, the bot continues after each; /story end posts the
whole text as a file. The story lives in the store (one active story per channel)."""

from __future__ import annotations

import io
import typing

import discord
from discord import app_commands

from bot.discord import render
from bot.discord.compat import commands
from bot.discord.replies import surface_for
from bot.service import Ghostwrite

SHOW_PAGES = 3           # /story show posts at most this many messages (the end of the story)


class StoryMixin:
    """Mixed into the Ghostwrite Cog; uses its `io`, `run_generation` and `svc`."""

    @commands.hybrid_group(name="story", invoke_without_command=True)
    @commands.guild_only()
    async def story(self, ctx: commands.Context):
        """A story the whole channel writes together."""
        await ctx.send_help(ctx.command)

    @story.command(name="start")
    @app_commands.describe(prompt="How the story begins (optional)")
    async def story_start(self, ctx: commands.Context, *, prompt: str | None = None):
        """Start a new story in this channel (ends the one running here)."""
        prompt = (prompt or "").strip()
        story_id = await self.io(self.svc.start_story, ctx.guild.id, ctx.channel.id, prompt, ctx.author.id)
        if not prompt:
            await surface_for(ctx).send_page(0, "A new story begins. Add lines with `/story add`; "
                                                "I continue after each.", None)
            return
        await self._continue_story(ctx, story_id, prompt, prompt)

    @story.command(name="add")
    @app_commands.describe(text="Your line; the bot continues after it")
    async def story_add(self, ctx: commands.Context, *, text: str):
        """Add a line to this channel's story; the bot continues it."""
        story = await self.io(self.svc.active_story, ctx.guild.id, ctx.channel.id)
        if story is None:
            await surface_for(ctx).fail("No story is running here: start one with `/story start`.")
            return
        line = text.strip()
        if not line:
            await surface_for(ctx).fail("Add some text.")
            return
        addition = (("\n" if story.text and not story.text.endswith("\n") else "") + line)
        story = await self.io(self.svc.append_story, story.id, addition)
        await self._continue_story(ctx, story.id, story.text, line)

    async def _continue_story(self, ctx: commands.Context, story_id: int, text: str, shown: str) -> None:
        result = await self.run_generation(surface_for(ctx), ctx.author, ctx.guild.id, ctx.channel.id,
                                           text[-self.svc.story_context_chars:], shown=shown)
        if result is not None and result.text and result.status in ("complete", "interrupted"):
            await self.io(self.svc.append_story, story_id, result.text)

    @story.command(name="show")
    async def story_show(self, ctx: commands.Context):
        """Show this channel's story so far (its end, if it is long)."""
        story = await self.io(self.svc.active_story, ctx.guild.id, ctx.channel.id)
        surface = surface_for(ctx)
        if story is None:
            await surface.fail("No story is running here: start one with `/story start`.")
            return
        pages = render.render_story(story.text) if story.text.strip() else ["*(empty so far)*"]
        if len(pages) > SHOW_PAGES:
            pages = pages[-SHOW_PAGES:]
            pages[0] = render.clip("-# … (the whole story comes as a file with `/story end`)\n" + pages[0])
        for i, page in enumerate(pages):
            await surface.send_page(i, page, None)

    @story.command(name="end")
    async def story_end(self, ctx: commands.Context):
        """End this channel's story and post it as a text file."""
        story = await self.io(self.svc.active_story, ctx.guild.id, ctx.channel.id)
        surface = surface_for(ctx)
        if story is None:
            await surface.fail("No story is running here.")
            return
        text = await self.io(self.svc.end_story, story.id)
        data = text.encode("utf-8")
        file = discord.File(io.BytesIO(data), filename=f"story-{story.id}.txt")
        words = len(text.split())
        await surface.send_file(f"The end. {words} words, {len(text)} characters.", file)

    if typing.TYPE_CHECKING:  # provided by the Cog
        svc: Ghostwrite

        async def io(self, fn, *args, **kwargs): ...

        async def run_generation(self, *args, **kwargs): ...
