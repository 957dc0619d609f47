"""/story: a story members write together, in a thread of its own.

``/story start`` opens a public thread named after the story's first words (when the bot may create
threads there; else the story runs in the channel, as before). In the thread, the bot continues after
every member's message (``mode: every``, the default) or only when mentioned or asked with ``/story add``
(``mode: mention``). ``/story end`` posts the whole text as a file and archives the thread.

The story, its thread and its mode live in the store (one active story per channel or thread), so a
restarted bot — or another process of a sharded bot — picks it up from the next message. On a server that
stores metadata only, the story's text is kept in this process's memory, never written.
"""

from __future__ import annotations

import io
import logging
import re
import typing

import discord
from discord import app_commands

from bot.discord import render
from bot.discord.compat import commands
from bot.discord.replies import NO_MENTIONS, MessageSurface, Surface, surface_for
from bot.service import Ghostwrite

log = logging.getLogger("ghostwrite.discord")

SHOW_PAGES = 3           # /story show posts at most this many messages (the end of the story)
THREAD_NAME_MAX = 100    # Discord's longest thread name
Mode = typing.Literal["every", "mention"]


def thread_name(prompt: str, story_id: int) -> str:
    """The story's first words (up to 8), else "Story N"."""
    words = " ".join(prompt.split()[:8])
    return (words[: THREAD_NAME_MAX - 1] + "…" if len(words) > THREAD_NAME_MAX else words) or f"Story {story_id}"


class ChannelSurface(Surface):
    """Posts into a channel or thread (a story's continuations inside its thread)."""

    def __init__(self, channel: discord.abc.Messageable, permissions: discord.Permissions | None = None):
        self.channel = channel
        self.permissions = permissions  # the bot's in the channel, when an interaction told (personas read them)

    async def begin(self) -> None:
        try:
            await self.channel.typing()
        except (discord.HTTPException, AttributeError):
            pass

    async def send_page(self, index, content, view):
        return await self.channel.send(content, allowed_mentions=NO_MENTIONS, **({"view": view} if view else {}))

    async def fail(self, text: str) -> None:
        await self.channel.send(render.clip(text), allowed_mentions=NO_MENTIONS, delete_after=30)

    async def send_file(self, content, file):
        return await self.channel.send(content, file=file, allowed_mentions=NO_MENTIONS)


class StoryMixin:
    """Mixed into the Ghostwrite Cog; uses its `io`, `run_generation`, `svc` and `story_texts`."""

    @commands.hybrid_group(name="story", invoke_without_command=True)
    @commands.guild_only()
    async def story(self, ctx: commands.Context):
        """A story the whole channel writes together."""
        await ctx.send_help(ctx.command)

    @story.command(name="start")
    @app_commands.describe(prompt="How the story begins (optional)",
                           mode="every: I continue after each message in the thread; mention: only when "
                                "mentioned or with /story add",
                           thread="Open a thread for the story (default: yes, where I may)")
    async def story_start(self, ctx: commands.Context, mode: typing.Optional[Mode] = None,
                          thread: typing.Optional[bool] = None, *, prompt: str | None = None):
        """Start a new story (in a thread of its own where possible)."""
        prompt = (prompt or "").strip()
        mode = mode or "every"
        channel = ctx.channel
        if thread is not False and self._may_open_thread(ctx):
            intro = f"📖 A new story begins{': *' + render.escape(prompt[:200]) + '*' if prompt else ''}. " \
                    f"Write in the thread: I continue {'after every message' if mode == 'every' else 'when mentioned'}."
            message = await ctx.send(render.clip(intro), allowed_mentions=NO_MENTIONS)
            try:
                opened = await message.create_thread(name=thread_name(prompt, 0), auto_archive_duration=1440)
            except discord.HTTPException as e:
                log.info("could not open a story thread in %s: %s", channel.id, e)
            else:
                story_id = await self.io(self.svc.start_story, ctx.guild.id, opened.id, prompt, ctx.author.id)
                await self.io(self.svc.set_story_thread, story_id, opened.id, channel.id, mode)
                self.story_texts[story_id] = prompt
                if prompt:
                    perms = ctx.interaction.app_permissions if ctx.interaction is not None else None
                    await self._continue_story(ChannelSurface(opened, perms), ctx.author, ctx.guild.id, opened.id,
                                               story_id, prompt, prompt, settings_channel=channel.id)
                return
        story_id = await self.io(self.svc.start_story, ctx.guild.id, channel.id, prompt, ctx.author.id)
        self.story_texts[story_id] = prompt
        if not prompt:
            await surface_for(ctx).send_page(0, "A new story begins. Add lines with `/story add`; "
                                                "I continue after each.", None)
            return
        await self._continue_story(surface_for(ctx), ctx.author, ctx.guild.id, channel.id, story_id, prompt, prompt,
                                   settings_channel=_home_id(channel))

    @staticmethod
    def _may_open_thread(ctx: commands.Context) -> bool:
        channel = ctx.channel
        if not isinstance(channel, discord.TextChannel):
            return False  # a thread already, a forum, a voice channel's chat: the story runs where it is
        perms = ctx.interaction.app_permissions if ctx.interaction is not None else channel.permissions_for(ctx.me)
        return perms.create_public_threads and perms.send_messages_in_threads

    @story.command(name="add")
    @app_commands.describe(text="Your line; the bot continues after it")
    async def story_add(self, ctx: commands.Context, *, text: str):
        """Add a line to this channel's (or thread's) story; the bot continues it."""
        story = await self.io(self.svc.active_story, ctx.guild.id, ctx.channel.id)
        if story is None:
            await surface_for(ctx).fail("No story is running here: start one with `/story start`.")
            return
        line = text.strip()
        if not line:
            await surface_for(ctx).fail("Add some text.")
            return
        await self._add_line(surface_for(ctx), ctx.author, ctx.guild.id, ctx.channel, story, line)

    async def story_message(self, message: discord.Message, mentioned: bool) -> bool:
        """A member's message in a thread: a line of the story running there (True: handled)."""
        if message.guild is None:
            return False
        story = await self.io(self.svc.active_story, message.guild.id, message.channel.id)
        if story is None:
            return False
        info = await self.io(self.svc.story_thread, story.id) or {}
        if info.get("mode") == "mention" and not mentioned:
            return True  # a member talking in the thread: not for the bot
        line = re.sub(rf"<@!?{self.bot.user.id}>", "", message.content).strip()
        if line:
            await self._add_line(MessageSurface(message), message.author, message.guild.id, message.channel, story, line)
        return True

    async def _add_line(self, surface: Surface, user, guild_id: int, channel, story, line: str) -> None:
        text = self._text_of(story)
        addition = ("\n" if text and not text.endswith("\n") else "") + line
        story = await self.io(self.svc.append_story, story.id, addition)
        self._remember(story.id, addition, story.text)
        await self._continue_story(surface, user, guild_id, channel.id, story.id, self._text_of(story), line,
                                   settings_channel=_home_id(channel))

    async def _continue_story(self, surface: Surface, user, guild_id: int, channel_id: int, story_id: int,
                              text: str, shown: str, *, settings_channel: int) -> None:
        # the whole story under its key: the service primes from the state its last turn left (only the new
        # lines and the last continuation run through the model) and all of it conditions what comes next
        result = await self.run_generation(surface, user, guild_id, channel_id, text[-self.svc.max_story_chars:],
                                           shown=shown, settings_channel=settings_channel,
                                           story=f"discord:{story_id}")
        if result is not None and result.text and result.status in ("complete", "interrupted"):
            story = await self.io(self.svc.append_story, story_id, result.text)
            self._remember(story_id, result.text, story.text)

    def _remember(self, story_id: int, text: str, stored: str) -> None:
        """The story's text in memory where the store keeps none (metadata only), else nothing."""
        if stored:  # the store keeps it
            self.story_texts.pop(story_id, None)
        else:
            self.story_texts[story_id] = self.story_texts.get(story_id, "") + text

    def _text_of(self, story) -> str:
        return story.text or self.story_texts.get(story.id, "")

    @story.command(name="show")
    async def story_show(self, ctx: commands.Context):
        """Show this channel's story so far (its end, if it is long)."""
        story = await self.io(self.svc.active_story, ctx.guild.id, ctx.channel.id)
        surface = surface_for(ctx)
        if story is None:
            await surface.fail("No story is running here: start one with `/story start`.")
            return
        text = self._text_of(story)
        pages = render.render_story(text) if text.strip() else ["*(empty so far)*"]
        if len(pages) > SHOW_PAGES:
            pages = pages[-SHOW_PAGES:]
            pages[0] = render.clip("-# … (the whole story comes as a file with `/story end`)\n" + pages[0])
        for i, page in enumerate(pages):
            await surface.send_page(i, page, None)

    @story.command(name="end")
    async def story_end(self, ctx: commands.Context):
        """End this channel's story, post it as a text file (and archive its thread)."""
        story = await self.io(self.svc.active_story, ctx.guild.id, ctx.channel.id)
        surface = surface_for(ctx)
        if story is None:
            await surface.fail("No story is running here.")
            return
        text = await self.io(self.svc.end_story, story.id) or self.story_texts.get(story.id, "")
        self.story_texts.pop(story.id, None)
        data = text.encode("utf-8")
        file = discord.File(io.BytesIO(data), filename=f"story-{story.id}.txt")
        words = len(text.split())
        await surface.send_file(f"The end. {words} words, {len(text)} characters.", file)
        if isinstance(ctx.channel, discord.Thread):
            try:
                await ctx.channel.edit(archived=True)
            except discord.HTTPException as e:
                log.info("could not archive story thread %s: %s", ctx.channel.id, e)

    if typing.TYPE_CHECKING:  # provided by the Cog
        svc: Ghostwrite
        story_texts: dict[int, str]
        bot: typing.Any

        async def io(self, fn, *args, **kwargs): ...

        async def run_generation(self, *args, **kwargs): ...


def _home_id(channel) -> int:
    """The channel whose settings apply: a thread's parent, else the channel itself."""
    return getattr(channel, "parent_id", None) or channel.id if isinstance(channel, discord.Thread) else channel.id
