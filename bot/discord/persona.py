"""Author personas: a continuation posted as its author ("Jane Austen", with the model's avatar) through a
channel webhook, when a server admin turned the `persona` setting on.

One webhook per channel and model, created by the bot with the author's name and the model's avatar
(``ghostwrite models set-avatar NAME FILE``), found again after a restart among the channel's webhooks (the
bot's own, by name) and remembered per process. Without Manage Webhooks (or when Discord refuses one) the
reply is an ordinary bot message, as before. Webhook messages carry ``AllowedMentions.none()`` and the
same Retry / Continue buttons (the bot owns the webhook, so its buttons reach the bot), and their ids are
stored like any reply's, so 👍/👎 count.
"""

from __future__ import annotations

import logging
import re
import time
import typing

import discord

from bot.discord.replies import NO_MENTIONS, InteractionSurface, MessageSurface, Surface

log = logging.getLogger("ghostwrite.discord")
NAME_MAX = 80        # Discord's longest webhook name
RETRY_AFTER = 600.0  # seconds before trying a channel again where a webhook was refused


def persona_name(card: dict, model: str) -> str:
    name = str(card.get("author") or model).strip() or model
    # Discord refuses webhook names holding "discord" or "clyde": a zero-width space breaks the word
    return re.sub(r"(?i)discord|clyde", lambda m: m[0][0] + "\u200b" + m[0][1:], name)[:NAME_MAX]


class PersonaSurface(Surface):
    """Pages go out through the webhook; errors and files through the surface it wraps."""

    def __init__(self, inner: Surface, webhook: discord.Webhook, name: str, thread: discord.abc.Snowflake | None,
                 on_gone: typing.Callable[[], None] = lambda: None):
        self.inner, self.webhook, self.name, self.thread, self.on_gone = inner, webhook, name, thread, on_gone
        self.plain = False  # the webhook was deleted under us: this reply goes on as plain messages

    async def begin(self) -> None:
        await self.inner.begin()

    async def send_page(self, index, content, view):
        kwargs: dict = {"username": self.name, "allowed_mentions": NO_MENTIONS, "wait": True}
        if view is not None:
            kwargs["view"] = view
        if self.thread is not None:
            kwargs["thread"] = self.thread
        if self.plain:
            return await self.inner.send_page(index, content, view)
        try:
            message = await self.webhook.send(content, **kwargs)
        except discord.NotFound:  # an admin deleted the webhook: forget it, answer plainly
            self.on_gone()
            self.plain = True
            return await self.inner.send_page(index, content, view)
        if index == 0 and isinstance(self.inner, InteractionSurface):
            # the deferred "thinking…" answer becomes a one-line pointer to the persona's message
            try:
                await self.inner.interaction.edit_original_response(
                    content=f"-# ✍️ as **{discord.utils.escape_markdown(self.name)}** {message.jump_url}",
                    allowed_mentions=NO_MENTIONS)
                self.inner._original_has_content = True
            except discord.HTTPException:
                log.debug("could not point the interaction at the persona's message", exc_info=True)
        return message

    async def fail(self, text: str) -> None:
        await self.inner.fail(text)

    async def send_file(self, content, file):
        return await self.inner.send_file(content, file)


class Personas:
    """The webhooks of one Cog (per process): `(channel id, model)` → webhook."""

    def __init__(self, cog: typing.Any):
        self.cog = cog
        self._hooks: dict[tuple[int, str], discord.Webhook] = {}
        self._refused: dict[int, float] = {}

    async def wrap(self, surface: Surface, model: str, card: dict) -> Surface:
        """`surface` speaking as `model`'s author where the channel allows it, else `surface` itself."""
        channel, perms = _channel_of(surface)
        if channel is None or getattr(channel, "guild", None) is None:
            return surface
        thread = channel if isinstance(channel, discord.Thread) else None
        home = channel.parent if thread is not None else channel
        if not isinstance(home, discord.TextChannel):
            return surface
        if perms is None:
            perms = home.permissions_for(home.guild.me)
        if not perms.manage_webhooks or time.monotonic() < self._refused.get(home.id, 0):
            return surface
        name = persona_name(card, model)
        try:
            hook = await self._webhook(home, model, name)
        except Exception as e:  # refused, or anything else: a persona must never cost the reply
            log.info("no persona webhook in #%s (%s): plain messages", home.id, e)
            self._refused[home.id] = time.monotonic() + RETRY_AFTER
            return surface
        return PersonaSurface(surface, hook, name, thread, on_gone=lambda: self.forget(home.id))

    async def _webhook(self, channel: discord.TextChannel, model: str, name: str) -> discord.Webhook:
        key = (channel.id, model)
        hook = self._hooks.get(key)
        if hook is not None:
            return hook
        me = channel.guild.me
        for existing in await channel.webhooks():
            if existing.name == name and existing.user is not None and me is not None and existing.user.id == me.id \
                    and existing.token:
                hook = existing
                break
        if hook is None:
            avatar = await self.cog.io(self.cog.svc.avatar, model)
            hook = await channel.create_webhook(name=name, avatar=avatar, reason=f"Ghostwrite persona of {model}")
        self._hooks[key] = hook
        return hook

    def forget(self, channel_id: int) -> None:
        for key in [k for k in self._hooks if k[0] == channel_id]:
            del self._hooks[key]


def _channel_of(surface: Surface) -> tuple[typing.Any, discord.Permissions | None]:
    if isinstance(surface, InteractionSurface):
        interaction = surface.interaction
        return interaction.channel, interaction.app_permissions
    if isinstance(surface, MessageSurface):
        return surface.message.channel, None
    return getattr(surface, "channel", None), getattr(surface, "permissions", None)  # (story.ChannelSurface)
