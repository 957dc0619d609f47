"""Where a reply goes and how it streams.

A `Surface` hides the difference between answering a slash command or button (interaction: defer, edit the
original response, follow-ups, ephemeral errors) and answering a message (prefix command or mention: reply,
channel messages, edits). `StreamingReply` renders the growing text into pages and pushes them to a surface
at most once per `interval` seconds; pages past the first go to follow-up messages.

Every send and edit uses ``AllowedMentions.none()``: generated text imitates people and must never ping.
"""

from __future__ import annotations

import asyncio
import logging
import time
import typing

import discord

from bot.discord import render

log = logging.getLogger(__name__)
NO_MENTIONS = discord.AllowedMentions.none()


class Surface:
    """Abstract reply target. `send_page(0, ...)` is the first message of the reply."""

    async def begin(self) -> None:  # acknowledge quickly (defer / typing)
        pass

    async def send_page(self, index: int, content: str, view: discord.ui.View | None) -> typing.Any:
        raise NotImplementedError

    async def edit_page(self, message: typing.Any, index: int, content: str, view: discord.ui.View | None) -> None:
        kwargs: dict = {"content": content, "allowed_mentions": NO_MENTIONS}
        if view is not None:
            kwargs["view"] = view
        await message.edit(**kwargs)

    async def fail(self, text: str) -> None:
        """A short error only the user sees (where Discord allows it)."""
        raise NotImplementedError

    async def send_file(self, content: str, file: discord.File) -> typing.Any:
        raise NotImplementedError


class InteractionSurface(Surface):
    def __init__(self, interaction: discord.Interaction):
        self.interaction = interaction
        self._original_has_content = False

    async def begin(self) -> None:
        if not self.interaction.response.is_done():
            await self.interaction.response.defer(thinking=True)

    async def send_page(self, index, content, view):
        kwargs: dict = {"allowed_mentions": NO_MENTIONS}
        if view is not None:
            kwargs["view"] = view
        if index == 0:
            if not self.interaction.response.is_done():
                await self.interaction.response.send_message(content, **kwargs)
                message = await self.interaction.original_response()
            else:
                message = await self.interaction.edit_original_response(content=content, **kwargs)
            self._original_has_content = True
            return message
        return await self.interaction.followup.send(content, wait=True, **kwargs)

    async def fail(self, text: str) -> None:
        text = render.clip(text)
        response = self.interaction.response
        if not response.is_done():
            await response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        if not self._original_has_content and response.type in (
            discord.InteractionResponseType.deferred_channel_message,
        ):
            # The public "thinking…" placeholder would otherwise stay: drop it, then answer privately.
            try:
                await self.interaction.delete_original_response()
            except discord.HTTPException:
                log.debug("could not delete the deferred response", exc_info=True)
        await self.interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    async def send_file(self, content, file):
        if not self.interaction.response.is_done():
            await self.interaction.response.send_message(content, file=file, allowed_mentions=NO_MENTIONS)
            return await self.interaction.original_response()
        if not self._original_has_content:
            self._original_has_content = True
            return await self.interaction.edit_original_response(content=content, attachments=[file],
                                                                 allowed_mentions=NO_MENTIONS)
        return await self.interaction.followup.send(content, file=file, wait=True, allowed_mentions=NO_MENTIONS)


class MessageSurface(Surface):
    """Replies to a member's message (prefix commands, mentions, story lines)."""

    def __init__(self, message: discord.Message, *, typing_indicator: bool = True):
        self.message = message
        self.typing_indicator = typing_indicator

    async def begin(self) -> None:
        if self.typing_indicator:
            try:
                await self.message.channel.typing()
            except (discord.HTTPException, AttributeError):
                pass

    async def send_page(self, index, content, view):
        kwargs: dict = {"allowed_mentions": NO_MENTIONS}
        if view is not None:
            kwargs["view"] = view
        if index == 0:
            return await self.message.reply(content, mention_author=False, **kwargs)
        return await self.message.channel.send(content, **kwargs)

    async def fail(self, text: str) -> None:
        await self.message.reply(render.clip(text), mention_author=False, allowed_mentions=NO_MENTIONS,
                                 delete_after=30)

    async def send_file(self, content, file):
        return await self.message.reply(content, file=file, mention_author=False, allowed_mentions=NO_MENTIONS)


def surface_for(ctx) -> Surface:
    """The surface of a hybrid command's context (slash → interaction, prefix → message)."""
    if getattr(ctx, "interaction", None) is not None:
        return InteractionSurface(ctx.interaction)
    return MessageSurface(ctx.message)


class StreamingReply:
    """Shows a growing continuation. `feed()` text as it arrives; a background loop pushes the first words as
    soon as they come (the reader sees text at first-token latency), then the current pages every `interval`
    seconds if anything changed; `finish()` writes the final pages with the footer and view."""

    def __init__(self, surface: Surface, shown_prompt: str, *, interval: float = 1.0):
        self.surface = surface
        self.shown_prompt = shown_prompt
        self.interval = interval
        self.text = ""
        self.messages: list[typing.Any] = []
        self._shown: list[str] = []
        self._dirty = False
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._fed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._last_push: float | None = None
        self.updates = 0

    def feed(self, piece: str) -> None:
        if piece:
            self.text += piece
            self._dirty = True
            self._fed.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="ghostwrite-stream-edits")

    async def _loop(self) -> None:
        stop, fed = asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(self._fed.wait())
        await asyncio.wait({stop, fed}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel(), fed.cancel()
        next_at = time.monotonic()  # the first words go out at once
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), max(0.0, next_at - time.monotonic()))
                return
            except asyncio.TimeoutError:
                pass
            next_at = time.monotonic() + self.interval
            if self._dirty:
                try:
                    await self._push(render.render_pages(self.shown_prompt, self.text, streaming=True), None)
                except discord.HTTPException:
                    log.warning("streaming edit failed", exc_info=True)

    async def _push(self, pages: list[str], view: discord.ui.View | None) -> None:
        async with self._lock:
            self._last_push = time.monotonic()
            self._dirty = False
            self.updates += 1
            last = len(pages) - 1
            for i, page in enumerate(pages):
                page_view = view if i == last else None
                if i < len(self.messages):
                    if self._shown[i] != page or page_view is not None:
                        await self.surface.edit_page(self.messages[i], i, page, page_view)
                        self._shown[i] = page
                else:
                    self.messages.append(await self.surface.send_page(i, page, page_view))
                    self._shown.append(page)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await self._task
            except Exception:  # the loop logs its own HTTP errors; never lose the final push over it
                log.debug("stream edit loop ended with an error", exc_info=True)

    async def finish(self, foot: str, view: discord.ui.View | None = None, *, wait: bool = True) -> None:
        """The final pages. With `wait`, keeps to the edit rate (the last streamed edit may be recent)."""
        await self.stop()
        if wait and self._last_push is not None:
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - self._last_push)))
        await self._push(render.render_pages(self.shown_prompt, self.text, foot), view)

    @property
    def last_message_id(self) -> int | None:
        return getattr(self.messages[-1], "id", None) if self.messages else None
