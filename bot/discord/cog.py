"""The Ghostwrite Cog: continuations on Discord.

One Cog class (`Ghostwrite`) assembled from mixins: this module holds the lifecycle, the shared generation
path (/continue, mentions, retry/continue buttons, story lines all go through `run_generation`);
`listeners.py` (mentions, story threads, votes), `story.py`, `admin.py` (settings, retrain), `info.py`
(models, history, forget), `privacy.py` (/ignoreme, /mydata, /optin) and `persona.py` (webhooks) add the rest.

Being a guest in someone else's bot: no tree sync, no global error handlers (only `cog_command_error`), a
single-worker executor of its own for blocking calls (store reads/writes, file handling), background tasks
started in `cog_load` and cancelled in `cog_unload`, bots ignored. Generation itself runs on the service's
threads (`svc.astream`), never on the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
import typing

import discord
from discord import app_commands

from bot.discord import render
from bot.discord.admin import RetrainMixin, SettingsMixin
from bot.discord.compat import commands
from bot.discord.config import DiscordConfig
from bot.discord.errors import Refused, error_text
from bot.discord.info import InfoMixin
from bot.discord.limits import Busy, GenerationGate, OnCooldown, UserCooldown
from bot.discord.listeners import ListenersMixin
from bot.discord.options import SAMPLING_KEYS, with_settings
from bot.discord.persona import Personas
from bot.discord.privacy import Ignored, PrivacyMixin
from bot.discord.replies import InteractionSurface, StreamingReply, Surface, surface_for
from bot.discord.story import StoryMixin
from bot.discord.views import GenerationButton, generation_view
from bot.service import Ghostwrite as Service
from bot.service import GhostwriteError, Prepared, Request, Result

log = logging.getLogger("ghostwrite.discord")

class Ghostwrite(PrivacyMixin, ListenersMixin, SettingsMixin, RetrainMixin, StoryMixin, InfoMixin, commands.Cog,
                 name="Ghostwrite"):
    """Continue any text in the voice of a trained author."""

    def __init__(self, bot: commands.Bot, service: Service | None = None, config: DiscordConfig | None = None):
        self.bot = bot
        self.config = config or DiscordConfig.from_env()
        self.svc: Service = service  # type: ignore[assignment] - made in cog_load when none is given
        self._own_service = service is None
        self.cooldown = UserCooldown(self.config.cooldown_rate, self.config.cooldown_per)
        self.gate = GenerationGate(self.config.max_concurrent, self.config.max_queue,
                                   queue_timeout=self.config.queue_timeout)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._inflight: set[asyncio.Task] = set()
        self._background: set[asyncio.Task] = set()
        self._settings_cache: dict[tuple, tuple[float, dict]] = {}
        self.model_cache: list[dict] = []
        self.personas = Personas(self)
        self.story_texts: dict[int, str] = {}  # metadata-only servers: a story's text lives here, not stored
        self.closing = False

    # ------------------------------------------------------------------ lifecycle
    async def cog_load(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ghostwrite-discord")
        if self.svc is None:
            from bot.service import ContinuationService

            try:
                self.svc = await self.io(ContinuationService)
            except BaseException:
                self._executor.shutdown(wait=False)
                self._executor = None
                raise
        self.bot.add_dynamic_items(GenerationButton)
        self.spawn(self._refresh_models(), name="ghostwrite-models-refresh")
        self.spawn(self._warm_up(), name="ghostwrite-warm-up")
        log.info("ghostwrite extension loaded")

    async def cog_unload(self) -> None:
        """Stop taking requests, let running generations finish (up to `shutdown_grace` s), then cancel the
        rest (the service stores them as interrupted) and the background tasks."""
        self.closing = True
        self.bot.remove_dynamic_items(GenerationButton)
        if self._inflight:
            log.info("waiting up to %.0f s for %d generation(s)", self.config.shutdown_grace, len(self._inflight))
            _, pending = await asyncio.wait(set(self._inflight), timeout=self.config.shutdown_grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=10)
        for task in set(self._background):
            task.cancel()
        try:
            await self.stop_jobs()
        except Exception:
            log.exception("could not stop the training job")
        if self._background:
            await asyncio.wait(set(self._background), timeout=5)
        if self._executor is not None:
            if self._own_service and self.svc is not None:
                await self.io(self.svc.close)
            await self.io(lambda: None)  # single worker, FIFO: every queued store write is done now
            self._executor.shutdown(wait=False)
            self._executor = None
        log.info("ghostwrite extension unloaded")

    def spawn(self, coro: typing.Coroutine, *, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def io(self, fn: typing.Callable, *args, **kwargs) -> typing.Any:
        """Run a blocking call (store, files) on the Cog's own single worker thread."""
        if self._executor is None:
            raise Refused("Ghostwrite is shutting down.")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def in_thread(self, fn: typing.Callable, *args) -> typing.Any:
        """A slow blocking call (stopping a training process) on a thread of its own, so it neither holds up
        the store worker nor borrows the host's default executor."""
        future: concurrent.futures.Future = concurrent.futures.Future()

        def work():
            try:
                future.set_result(fn(*args))
            except BaseException as e:  # handed to the awaiting coroutine
                future.set_exception(e)

        threading.Thread(target=work, name="ghostwrite-discord-slow", daemon=True).start()
        return await asyncio.wrap_future(future)

    async def _warm_up(self) -> None:
        """Open the store and load the default model now (migrations, torch import and weights take seconds),
        not on the first request."""
        try:
            await self.in_thread(self.svc.warm_up)
            log.info("default model loaded")
        except Exception as e:  # no model yet, say: the first request will explain
            log.info("default model not preloaded: %s", e)

    async def _refresh_models(self) -> None:
        while True:
            try:
                self.model_cache = await self.io(self.svc.models)
            except Exception:
                log.warning("could not list models", exc_info=True)
            await asyncio.sleep(self.config.models_refresh)

    # ------------------------------------------------------------------ settings
    async def settings_for(self, guild_id: int | None, channel_id: int | None) -> dict:
        key = (guild_id, channel_id)
        hit = self._settings_cache.get(key)
        if hit and time.monotonic() - hit[0] < 30:
            return hit[1]
        values = await self.io(self.svc.guild_settings, guild_id, channel_id) if guild_id else {}
        self._settings_cache[key] = (time.monotonic(), values)
        return values

    def forget_cached_settings(self) -> None:
        self._settings_cache.clear()

    @staticmethod
    def channel_allowed(settings: dict, channel_id: int | None) -> bool:
        allowed = settings.get("allowed_channels") or []
        return not allowed or str(channel_id) in {str(c) for c in allowed}

    # ------------------------------------------------------------------ the generation path
    async def admit(self, user_id: int):
        """Quick checks before anything is sent: shutting down, per-user cooldown, capacity. The cooldown is
        counted in the store, so every bot process (every shard) counts a member once; when the store
        cannot say, this process's own count stands in."""
        if self.closing:
            raise Refused("Ghostwrite is restarting; try again in a minute.")
        key = f"discord:{user_id}"
        try:
            wait = await self.io(self.svc.hit_cooldown, key, self.cooldown.rate, self.cooldown.per)
            if wait is not None:
                raise OnCooldown(wait)
        except OnCooldown as e:
            raise Refused(f"Slow down: try again in {max(1, round(e.retry_after))} s.") from None
        except GhostwriteError:
            try:
                self.cooldown.hit(user_id)
            except OnCooldown as e:
                raise Refused(f"Slow down: try again in {max(1, round(e.retry_after))} s.") from None
        try:
            return self.gate.admit()
        except Busy as e:
            await self.reset_cooldown(user_id)
            raise Refused(f"I'm busy, try again in {e.retry_after} s.") from None

    async def reset_cooldown(self, user_id: int) -> None:
        self.cooldown.reset(user_id)
        try:
            await self.io(self.svc.reset_cooldown, f"discord:{user_id}")
        except GhostwriteError:
            pass

    async def run_generation(self, surface: Surface, user: discord.abc.User, guild_id: int | None,
                             channel_id: int | None, prompt: str, *, model: str | None = None,
                             overrides: dict | None = None, parent_id: int | None = None,
                             shown: str | None = None, check_channel: bool = True,
                             settings_channel: int | None = None, story: str | None = None) -> Result | None:
        """Admit, acknowledge, stream a continuation of `prompt` to `surface`; returns the service Result (or
        None when refused or failed: the user has been told why). `settings_channel`: the channel whose
        settings apply (a story thread's parent), when not `channel_id` itself. `story`: the story's key when
        `prompt` is a story's whole text (the service carries its state over from the last turn)."""
        try:
            ticket = await self.admit(user.id)
        except Refused as e:
            await surface.fail(str(e))
            return None
        task = asyncio.create_task(self._generate(surface, ticket, user, guild_id, channel_id, prompt, model,
                                                  overrides or {}, parent_id, shown, settings_channel or channel_id,
                                                  story),
                                   name="ghostwrite-generation")
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return await task

    async def _generate(self, surface, ticket, user, guild_id, channel_id, prompt, model, overrides,
                        parent_id, shown, settings_channel, story=None):
        try:
            await surface.begin()
            settings = await self.settings_for(guild_id, settings_channel)
            if guild_id and not self.channel_allowed(settings, settings_channel):
                raise Refused("Ghostwrite is not enabled in this channel.")
            if not prompt.strip():
                raise Refused("Give me some text to continue.")
            sampling = {k: settings[k] for k in SAMPLING_KEYS if settings.get(k) is not None}
            sampling.update({k: v for k, v in overrides.items() if v is not None})
            req = Request(prompt=prompt, model=model or settings.get("model"), settings=sampling,
                          source="discord", user_id=str(user.id), user_name=str(user),
                          guild_id=str(guild_id) if guild_id else None,
                          channel_id=str(channel_id) if channel_id else None, parent_id=parent_id, story=story)
            # the door, passed once (prompt, settings, model): a bad request fails fast, with one line
            prepared = await self.io(self.svc.prepare, req)
            if settings.get("persona") and guild_id:
                surface = await self.personas.wrap(surface, prepared.model, await self._card(prepared.model))
            async with ticket:
                return await self._stream(surface, prepared, prompt if shown is None else shown)
        except (Refused, GhostwriteError) as e:
            await surface.fail(str(e))
        except Busy as e:
            await surface.fail(f"I'm busy, try again in {e.retry_after} s.")
        except discord.HTTPException as e:
            log.warning("Discord refused a reply: %s", e)
        finally:
            ticket.cancel()
        return None

    async def _stream(self, surface: Surface, req: Prepared, shown: str) -> Result | None:
        reply = StreamingReply(surface, shown, interval=self.config.edit_interval)
        astream = self.svc.astream(req)
        reply.start()
        try:
            async for piece in astream:
                reply.feed(piece)
        except asyncio.CancelledError:
            await asyncio.wait_for(self._finish_interrupted(reply, astream), 10)
            raise
        except GhostwriteError as e:
            await reply.stop()
            if not reply.messages:
                raise  # nothing shown yet: the user gets the one-line error
            log.info("generation failed part-way: %s", e)
        except BaseException:
            await reply.stop()
            raise
        result = astream.result
        if result is None or (result.status == "error" and not reply.text):
            await reply.stop()
            if result is not None:
                log.warning("generation %s failed: %s", result.generation_id, result.error)
            await surface.fail("The generation failed; the details are in the bot's log.")
            return result
        if result.status == "error":
            log.warning("generation %s failed part-way: %s", result.generation_id, result.error)
        await reply.finish(self.footer(result), generation_view(result.generation_id))
        if reply.last_message_id is not None:
            await self.io(self.svc.set_message_id, result.generation_id, reply.last_message_id)
        return result

    async def _finish_interrupted(self, reply: StreamingReply, astream) -> None:
        try:
            await astream.aclose()
        except Exception:
            log.debug("closing an interrupted stream", exc_info=True)
        result = astream.result
        try:
            if result is not None:
                await reply.finish(self.footer(result), wait=False)
                if reply.last_message_id is not None:
                    await self.io(self.svc.set_message_id, result.generation_id, reply.last_message_id)
            else:
                await reply.stop()
        except Exception:
            log.debug("could not show an interrupted reply", exc_info=True)

    async def _card(self, model: str) -> dict:
        card = next((c for c in self.model_cache if c.get("name") == model), None)
        return card if card is not None else await self.io(self.svc.card, model)

    @staticmethod
    def footer(result) -> str:
        return render.footer(result.model, result.version, result.settings or {}, status=result.status,
                             generation_id=result.generation_id)

    # ------------------------------------------------------------------ /continue
    @commands.hybrid_command(name="continue", aliases=["cont"])
    @with_settings(prompt="The text to continue", model="Model name or name@vN")  # + one option per setting
    async def continue_(self, ctx: commands.Context, *, prompt: str, model: str | None, settings: dict):
        """Continue your text in the voice of a model."""
        await self.run_generation(surface_for(ctx), ctx.author, ctx.guild.id if ctx.guild else None,
                                  ctx.channel.id, prompt, model=model, overrides=settings)

    @continue_.autocomplete("model")
    async def _model_autocomplete(self, interaction: discord.Interaction, current: str):
        names = [c.get("name", "") for c in self.model_cache]
        return [app_commands.Choice(name=n, value=n) for n in names if current.lower() in n.lower()][:25]

    # ------------------------------------------------------------------ buttons
    async def on_generation_button(self, interaction: discord.Interaction, action: str, generation_id: int):
        surface = InteractionSurface(interaction)
        if await self.ignored(interaction.user.id):
            await surface.fail(str(Ignored()))
            return
        try:
            gen = await self.io(self.svc.generation, generation_id)
        except Refused as e:
            await surface.fail(str(e))
            return
        if gen is None:
            await surface.fail("That continuation is no longer stored.")
            return
        settings = {k: v for k, v in (gen.params or {}).items() if k in SAMPLING_KEYS}
        if (gen.params or {}).get("metadata_only"):
            await surface.fail("This server stores no text, so I don't have that one any more: use `/continue`.")
            return
        if action == "retry":
            prompt, shown = gen.prompt, gen.prompt
        else:  # the end of the text so far, as much as a story's continuation sees
            prompt = (gen.prompt + gen.output)[-self.svc.story_context_chars:]
            shown = prompt
        await self.run_generation(surface, interaction.user, interaction.guild_id, interaction.channel_id,
                                  prompt, model=gen.model, overrides=settings, parent_id=gen.id, shown=shown)

    # ------------------------------------------------------------------ errors (this Cog's commands only)
    async def cog_command_error(self, ctx: commands.Context, error: Exception) -> None:
        if isinstance(error, Ignored) and ctx.interaction is None:
            return  # a prefix command of someone who asked to be ignored: not even an answer
        try:
            await surface_for(ctx).fail(error_text(ctx, error))
        except discord.HTTPException:
            log.warning("could not report an error to the user", exc_info=True)

    # ------------------------------------------------------------------ Red: data deletion requests
    async def red_delete_data_for_user(self, *, requester: str, user_id: int) -> None:
        await self.io(self.svc.forget, user_id)
