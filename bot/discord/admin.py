"""Server administration: /settings (per guild and per channel) and /retrain (a new voice from an uploaded
corpus, trained by the service's retraining job in its own process; the service serves the new version as soon as it
is registered, so nothing here restarts anything)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import typing

import discord
from discord import app_commands

from bot.discord import render
from bot.discord.compat import commands
from bot.discord.options import SAMPLING_KEYS, SWITCHES, SettingKey, parse_value
from bot.discord.replies import NO_MENTIONS, surface_for
from bot.service import Request

log = logging.getLogger("ghostwrite.discord")

_FINISHED = ("complete", "completed", "done", "finished", "failed", "error", "cancelled", "canceled",
             "interrupted")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class NotAllowed(commands.CheckFailure):
    pass


async def _is_owner(bot, user) -> bool:
    try:
        return await bot.is_owner(user)
    except Exception:  # no application info reachable: nobody is the owner
        return False


def admin_only(permission: str = "manage_guild"):
    """Administrators (or members with `permission`) of the guild, or the bot owner."""

    async def predicate(ctx: commands.Context) -> bool:
        if ctx.guild is None:
            raise commands.NoPrivateMessage("Use this in a server.")
        perms = ctx.permissions
        if perms.administrator or getattr(perms, permission, False) or await _is_owner(ctx.bot, ctx.author):
            return True
        who = "administrators" if permission == "administrator" else "members with Manage Server"
        raise NotAllowed(f"Only {who} or the bot owner can do that.")

    return commands.check(predicate)


def describe_settings(values: dict) -> str:
    if not values:
        return "defaults"
    parts = []
    for k, v in sorted(values.items()):
        if k == "allowed_channels":
            v = " ".join(f"<#{c}>" for c in v) or "all"
        parts.append(f"{k}={v}")
    return ", ".join(parts)


class SettingsMixin:
    @commands.hybrid_group(name="settings", invoke_without_command=True)
    @app_commands.default_permissions(manage_guild=True)
    @admin_only()
    async def settings(self, ctx: commands.Context):
        """Ghostwrite settings of this server and its channels (admins)."""
        await self.settings_show.callback(self, ctx)

    @settings.command(name="show")
    @admin_only()
    async def settings_show(self, ctx: commands.Context):
        """Show this server's settings and the channel overrides."""
        values = await self.io(self.svc.all_settings, ctx.guild.id)
        lines = [f"**Server:** {describe_settings(values.get('guild', {}))}"]
        for channel_id, chan in sorted(values.get("channels", {}).items()):
            lines.append(f"<#{channel_id}>: {describe_settings(chan)}")
        await ctx.send(render.clip("\n".join(lines)), ephemeral=True, allowed_mentions=NO_MENTIONS)

    @settings.command(name="set")
    @admin_only()
    @app_commands.describe(key="What to set", value="The value ('default' clears it)",
                           channel="Only for this channel (default: the whole server)")
    async def settings_set(self, ctx: commands.Context, key: SettingKey, value: str,
                           channel: discord.TextChannel | None = None):
        """Set a default (model, sampling settings, mentions / persona / metadata_only on/off) for the server
        or one channel."""
        parsed = parse_value(key, value)
        if parsed is not None and key == "model":
            await self.io(self.svc.resolve, parsed)
        elif key != "model" and key not in SWITCHES:
            # checked with the settings it will be used with: `length 1000` then `unit sentences` (each fine
            # alone) used to leave every /continue there failing
            current = await self.io(self.svc.guild_settings, ctx.guild.id, channel.id if channel else None)
            merged = {k: v for k, v in current.items() if k in SAMPLING_KEYS and v is not None}
            merged.pop(key, None)
            if parsed is not None:
                merged[key] = parsed
            await self.io(self.svc.validate, Request(prompt="", settings=merged))
        scope, scope_id = ("channel", channel.id) if channel else ("guild", ctx.guild.id)
        values = await self.io(self.svc.set_setting, scope, scope_id, key, parsed, guild_id=ctx.guild.id)
        self.forget_cached_settings()
        where = channel.mention if channel else "this server"
        await ctx.send(f"Settings for {where}: {describe_settings(values)}", ephemeral=True,
                       allowed_mentions=NO_MENTIONS)

    @settings.command(name="channel")
    @admin_only()
    @app_commands.describe(channel="The channel", allowed="Whether Ghostwrite may answer there")
    async def settings_channel(self, ctx: commands.Context, channel: discord.TextChannel, allowed: bool):
        """Allow or disallow a channel. Once any channel is allowed, only allowed channels are."""
        current = await self.io(self.svc.guild_settings, ctx.guild.id, None)
        chans = [str(c) for c in current.get("allowed_channels") or []]
        chans = sorted(set(chans) | {str(channel.id)}) if allowed else [c for c in chans if c != str(channel.id)]
        await self.io(self.svc.set_setting, "guild", ctx.guild.id, "allowed_channels", chans or None)
        self.forget_cached_settings()
        shown = " ".join(f"<#{c}>" for c in chans) or "every channel"
        await ctx.send(f"Ghostwrite answers in: {shown}", ephemeral=True, allowed_mentions=NO_MENTIONS)


def _get(obj: typing.Any, key: str, default=None):
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def describe_run(run: typing.Any) -> str:
    status = _get(run, "status", "?")
    model = _get(run, "model", "?")
    progress = _get(run, "progress") or {}
    parts = [f"Training **{render.escape(str(model))}** (run #{_get(run, 'id', '?')}): {status}"]
    step, total = progress.get("step"), progress.get("total_steps") or progress.get("steps")
    if step is not None:
        parts.append(f"step {step}" + (f"/{total}" if total else ""))
    loss = progress.get("train_loss", progress.get("loss"))
    if loss is not None:
        parts.append(f"loss {float(loss):.3f}")
    val = progress.get("val_bpc", _get(run, "val_bpc"))
    if val is not None:
        parts.append(f"val bpc {float(val):.3f}")
    elapsed = progress.get("elapsed", progress.get("elapsed_s"))
    if elapsed is not None:
        parts.append(f"{int(elapsed)} s")
    if progress.get("eta") is not None and status not in _FINISHED:
        parts.append(f"about {int(progress['eta'])} s left")
    if status in ("complete", "completed", "done", "finished"):
        version = _get(run, "new_version")
        parts.append(f"now serving v{version}" if version else "done")
    elif status in ("failed", "error", "cancelled", "canceled", "interrupted"):
        err = _get(run, "error")
        parts.append((render.clip(str(err), 300) + "; " if err else "") + "the previous version keeps serving")
    return " · ".join(parts)


class RetrainMixin:
    @commands.hybrid_group(name="retrain", fallback="start")
    @commands.guild_only()
    @app_commands.default_permissions(administrator=True)
    @admin_only("administrator")
    @app_commands.describe(corpus="A UTF-8 text file", name="Model to train (default: this channel's model)",
                           base="Fine-tune the current version (default) or train from scratch")
    async def retrain(self, ctx: commands.Context, corpus: discord.Attachment, name: str | None = None,
                      base: typing.Literal["current", "fresh"] = "current"):
        """Train a model on an uploaded text file; the new version serves as soon as it is ready."""
        limit = self.config.corpus_max_bytes
        surface = surface_for(ctx)
        if corpus.size > limit:
            await surface.fail(f"That file is {corpus.size:,} bytes; the limit is {limit:,} bytes of UTF-8 text.")
            return
        if name is not None and not _MODEL_NAME.match(name):
            await surface.fail("A model name is letters, digits, '.', '_' or '-' (up to 64).")
            return
        await surface.begin()
        data = await corpus.read()
        settings = await self.settings_for(ctx.guild.id, ctx.channel.id)
        model = name or settings.get("model") or (await self.io(self.svc.resolve, None))[0]
        path = await self.io(self.svc.keep_upload, data, limit, f"discord/{ctx.guild.id}", corpus.filename)
        run_id = await self.io(self.svc.retrain, model, str(path), base=None if base == "current" else "fresh",
                               max_time=self.config.retrain_max_time, requested_by=str(ctx.author.id))
        message = await surface.send_page(0, f"Training **{render.escape(model)}** (run #{run_id}) is queued.", None)
        self.spawn(self._watch_run(run_id, message, ctx.channel), name=f"ghostwrite-retrain-{run_id}")

    async def _watch_run(self, run_id: int, message, channel) -> None:
        """Edit one message with the job's progress until it ends (a new channel message if the
        interaction token expires after 15 minutes)."""
        shown, started = None, time.monotonic()
        while True:
            run = await self.io(self.svc.job_status, run_id)
            text = describe_run(run)
            if text != shown:
                try:
                    await message.edit(content=render.clip(text), allowed_mentions=NO_MENTIONS)
                except discord.HTTPException as e:
                    if time.monotonic() - started < 14 * 60 or channel is None:
                        log.warning("could not update retrain progress: %s", e)
                    else:
                        message = await channel.send(render.clip(text), allowed_mentions=NO_MENTIONS)
                shown = text
            if _get(run, "status") in _FINISHED:
                self.model_cache = await self.io(self.svc.models)
                return
            await asyncio.sleep(self.config.progress_interval)

    @retrain.command(name="from-channel")
    @admin_only("administrator")
    @app_commands.describe(name="Model to train (default: this channel's model)",
                           messages="How many recent messages of this channel to look through",
                           preview="Only show this many of the messages that would be used (no training)")
    async def retrain_from_channel(self, ctx: commands.Context, name: str | None = None,
                                   messages: commands.Range[int, 1, 100_000] = 1000,
                                   preview: commands.Range[int, 0, 20] = 0):
        """Train on this channel's messages by members who opted in with /optin (nobody else's are read)."""
        surface = surface_for(ctx)
        if name is not None and not _MODEL_NAME.match(name):
            await surface.fail("A model name is letters, digits, '.', '_' or '-' (up to 64).")
            return
        if await self.io(self.svc.metadata_only, ctx.guild.id):
            await surface.fail("This server stores metadata only: a corpus of members' messages would store text.")
            return
        opted = await self.io(self.svc.opted_in, ctx.guild.id)
        if not opted:
            await surface.fail("Nobody here has opted in yet: members who agree use `/optin`.")
            return
        await surface.begin()
        lines, members = [], set()
        try:
            async for message in ctx.channel.history(limit=min(messages, self.config.channel_corpus_messages)):
                if message.author.bot or str(message.author.id) not in opted:
                    continue  # never read: only the author of an opted-in member's message is looked at first
                text = message.clean_content.strip()
                if text:
                    lines.append(text)
                    members.add(message.author.id)
        except discord.Forbidden:
            await surface.fail("I can't read this channel's history: I need Read Message History here.")
            return
        lines.reverse()  # oldest first, as written
        corpus = "\n".join(lines) + "\n"
        counts = f"{len(lines)} messages from {len(members)} member(s), {len(corpus):,} characters"
        if preview:
            shown = "\n".join(f"> {render.escape(line[:150])}" for line in lines[:preview])
            await surface.send_page(0, render.clip(f"Would train on {counts}.\n{shown}"), None)
            return
        least = self.config.channel_corpus_min_chars
        if len(corpus.strip()) < least:
            await surface.fail(f"Only {counts} here; a corpus needs at least {least:,} characters.")
            return
        settings = await self.settings_for(ctx.guild.id, ctx.channel.id)
        model = name or settings.get("model") or (await self.io(self.svc.resolve, None))[0]
        path = await self.io(self.svc.keep_upload, corpus.encode("utf-8"), self.config.corpus_max_bytes,
                             f"discord/{ctx.guild.id}", f"channel-{ctx.channel.id}.txt")
        run_id = await self.io(self.svc.retrain, model, str(path), base=None, max_time=self.config.retrain_max_time,
                               requested_by=str(ctx.author.id))
        message = await surface.send_page(0, f"Training **{render.escape(model)}** (run #{run_id}) on {counts} "
                                             "is queued.", None)
        self.spawn(self._watch_run(run_id, message, ctx.channel), name=f"ghostwrite-retrain-{run_id}")

    @retrain.command(name="status")
    @admin_only("administrator")
    async def retrain_status(self, ctx: commands.Context):
        """Show the running (or last) training job."""
        run_id = await self.io(self.svc.current_job)
        run = await self.io(self.svc.job_status, run_id)  # None: the newest run
        text = describe_run(run) if run is not None else "No training job has run yet."
        await ctx.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @retrain.command(name="cancel")
    @admin_only("administrator")
    async def retrain_cancel(self, ctx: commands.Context):
        """Cancel the running training job (the current version keeps serving)."""
        run_id = await self.io(self.svc.current_job)
        if run_id is None:
            newest = await self.io(self.svc.job_status, None)
            elsewhere = newest is not None and _get(newest, "status") in ("queued", "running")
            await surface_for(ctx).fail(f"Run #{_get(newest, 'id')} is another bot process's (another shard's): "
                                        "cancel it from a server that process serves." if elsewhere
                                        else "No training job is running.")
            return
        await ctx.defer(ephemeral=True)
        # Stopping the trainer can take seconds: not on the worker that serves store calls.
        await self.in_thread(self.svc.cancel_job, run_id)
        await ctx.send(f"Cancelled run #{run_id}; the current version keeps serving.", ephemeral=True,
                       allowed_mentions=NO_MENTIONS)

    async def stop_jobs(self) -> None:
        """On unload: a training job dies with its watcher, so cancel it (the old version keeps serving)."""
        if await self.io(self.svc.current_job) is not None:
            log.info("cancelling the running training job")
            await self.in_thread(self.svc.stop_jobs)
