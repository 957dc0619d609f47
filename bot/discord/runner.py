"""`ghostwrite bot`: a standalone Discord bot that loads the same extension a host bot would
(``bot.discord``); nothing the extension needs lives here.

The token comes from ``DISCORD_TOKEN`` or ``--token-file`` and is never printed or logged. ``--sync`` pushes the
slash commands to Discord (globally, or to one ``--guild`` where they appear at once). SIGTERM and Ctrl+C
close the bot gracefully: the extension stops taking requests, lets running generations finish for a while
and stores the rest as interrupted.

``GHOSTWRITE_DISCORD_API_BASE`` and ``GHOSTWRITE_DISCORD_GATEWAY`` point the client at another Discord API
and gateway (the end-to-end tests run a fake one on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Optional

import aiohttp
import discord
import typer
import yarl
from discord.ext import commands

from bot.service import GhostwriteError

log = logging.getLogger("ghostwrite.discord")

EXTENSION = "bot.discord"
# read_message_history: /retrain from-channel; create_public_threads: story threads; manage_webhooks: personas
INVITE_PERMISSIONS = discord.Permissions(view_channel=True, send_messages=True, send_messages_in_threads=True,
                                         attach_files=True, read_message_history=True, create_public_threads=True,
                                         manage_webhooks=True)


MAX_SHARDS = 10_000


def read_token(token_file: Optional[Path], environ=os.environ) -> str:
    """The bot token: --token-file wins over DISCORD_TOKEN. Errors never include the token."""
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise GhostwriteError(f"cannot read the token file {token_file}: {e.strerror}") from None
        if not token:
            raise GhostwriteError(f"the token file {token_file} is empty")
        return check_token(token, str(token_file))
    token = (environ.get("DISCORD_TOKEN") or "").strip()
    if not token:
        raise GhostwriteError("no Discord token: set DISCORD_TOKEN or pass --token-file PATH")
    return check_token(token, "DISCORD_TOKEN")


def check_token(token: str, where: str) -> str:
    """A token goes into an HTTP header: spaces, control characters or non-ASCII in it (a pasted line
    break, a quote) can never be right. Refused with one line that does not show it."""
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise GhostwriteError(f"the Discord token in {where} has spaces, control or non-ASCII characters in it")
    return token


def apply_endpoint_overrides(environ=os.environ) -> None:
    """Point discord.py at another API base / gateway (tests, proxies). Public class attributes only."""
    base = (environ.get("GHOSTWRITE_DISCORD_API_BASE") or "").strip()
    gateway = (environ.get("GHOSTWRITE_DISCORD_GATEWAY") or "").strip()
    for name, value, schemes in (("GHOSTWRITE_DISCORD_API_BASE", base, ("http", "https")),
                                 ("GHOSTWRITE_DISCORD_GATEWAY", gateway, ("ws", "wss"))):
        try:
            url = yarl.URL(value)
        except ValueError:
            url = None
        if value and (url is None or url.scheme not in schemes or not url.host):
            raise GhostwriteError(f"{name} must be a {' or '.join(schemes)} URL, got {value[:60]!r}")
    if base:
        discord.http.Route.BASE = base.rstrip("/")
    if gateway:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)


def make_intents() -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = True  # privileged: prefix commands and mentions read message text
    intents.members = False
    intents.presences = False
    return intents


class _Standalone:
    """What the standalone bot adds to a plain discord.py bot: load the extension, optionally sync."""

    def __init__(self, *, prefix: str, sync: bool, guild: Optional[int], **kwargs):
        super().__init__(command_prefix=commands.when_mentioned_or(prefix), intents=make_intents(),
                         allowed_mentions=discord.AllowedMentions.none(), **kwargs)
        self._sync, self._sync_guild = sync, guild

    async def setup_hook(self) -> None:
        await self.load_extension(EXTENSION)
        if self._sync:
            if self._sync_guild:
                target = discord.Object(id=self._sync_guild)
                self.tree.copy_global_to(guild=target)
                synced = await self.tree.sync(guild=target)
                log.info("synced %d slash commands to guild %s", len(synced), self._sync_guild)
            else:
                synced = await self.tree.sync()
                log.info("synced %d slash commands globally (they can take a while to appear)", len(synced))

    async def on_ready(self) -> None:
        log.info("logged in as %s (%s) in %d server(s)", self.user, self.user and self.user.id, len(self.guilds))
        if self.application_id:
            url = discord.utils.oauth_url(self.application_id, permissions=INVITE_PERMISSIONS,
                                          scopes=("bot", "applications.commands"))
            log.info("invite link: %s", url)


class GhostwriteBot(_Standalone, commands.Bot):
    pass


class ShardedGhostwriteBot(_Standalone, commands.AutoShardedBot):
    pass


def parse_shard_ids(text: Optional[str], count: Optional[int]) -> Optional[list[int]]:
    """`--shard-ids 0,1` → [0, 1]: distinct ids below --shard-count (which must be given with them)."""
    if text is None:
        return None
    if not count:
        raise GhostwriteError("--shard-ids needs --shard-count N (the total over every process)")
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise GhostwriteError(f"--shard-ids is a list of numbers like 0,1, not {text[:40]!r}") from None
    if not ids or len(set(ids)) != len(ids) or any(not 0 <= i < count for i in ids):
        raise GhostwriteError(f"--shard-ids must be distinct numbers from 0 to {count - 1}, got {text[:40]!r}")
    return sorted(ids)


def make_bot(*, prefix: str = "!", sync: bool = False, guild: Optional[int] = None,
             shards: Optional[int] = None, shard_ids: Optional[list[int]] = None) -> commands.Bot:
    """One gateway connection by default; `shards` N > 0 for N shards, 0 for Discord's recommendation;
    `shard_ids`: only those of the N shards run here (the other processes run the rest)."""
    if shards is None:
        return GhostwriteBot(prefix=prefix, sync=sync, guild=guild)
    kwargs: dict = {"shard_count": shards} if shards else {}
    if shard_ids is not None:
        kwargs["shard_ids"] = shard_ids
    return ShardedGhostwriteBot(prefix=prefix, sync=sync, guild=guild, **kwargs)


async def run_bot(token: str, *, prefix: str = "!", sync: bool = False, guild: Optional[int] = None,
                  shards: Optional[int] = None, shard_ids: Optional[list[int]] = None) -> None:
    apply_endpoint_overrides()
    bot = make_bot(prefix=prefix, sync=sync, guild=guild, shards=shards, shard_ids=shard_ids)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            pass
    async with bot:
        try:
            await bot.login(token)
        except discord.LoginFailure:
            raise GhostwriteError("Discord rejected the token (check DISCORD_TOKEN / --token-file)") from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
            raise GhostwriteError(f"cannot reach Discord at {discord.http.Route.BASE}: "
                                  f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        connection = asyncio.create_task(bot.connect(), name="ghostwrite-gateway")
        stopper = asyncio.create_task(stop.wait(), name="ghostwrite-stop")
        done, _ = await asyncio.wait({connection, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("shutting down: finishing running generations")
            await bot.close()  # unloads the extension first, which drains in-flight generations
        else:
            stopper.cancel()
        await connection  # re-raises a gateway failure
    log.info("stopped")


def bot_command(
    token_file: Optional[Path] = typer.Option(None, "--token-file", help="File holding the bot token "
                                              "(default: the DISCORD_TOKEN environment variable)."),
    sync: bool = typer.Option(False, "--sync", help="Register the slash commands with Discord on start."),
    guild: Optional[int] = typer.Option(None, "--guild", min=1, max=2**64 - 1,
                                        help="With --sync: only this server (instant)."),
    prefix: str = typer.Option("!", "--prefix", help="Prefix for text commands (mentioning the bot works too)."),
    shards: Optional[int] = typer.Option(None, "--shard-count", "--shards", min=0, max=MAX_SHARDS,
                                         envvar="GHOSTWRITE_SHARD_COUNT",
                                         help="Shards over every process; 0 = Discord's recommendation "
                                              "(default: one connection)."),
    shard_ids: Optional[str] = typer.Option(None, "--shard-ids", envvar="GHOSTWRITE_SHARD_IDS", help="The shards this process runs, e.g. 0,1 "
                                            "(with --shard-count; other processes on the same database run "
                                            "the rest and share settings, stories, cooldowns and the training "
                                            "lock)."),
):
    """Run the Discord bot (slash and prefix commands, streaming continuations, /retrain)."""
    ids = parse_shard_ids(shard_ids, shards)
    token = read_token(token_file)
    from bot.discord.config import DiscordConfig

    DiscordConfig.from_env()  # junk in a GHOSTWRITE_DISCORD_* variable: one line now, not after logging in
    for name in ("ghostwrite", "discord"):
        logging.getLogger(name).setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if guild is not None and not sync:
        raise GhostwriteError("--guild only makes sense with --sync")
    try:
        asyncio.run(run_bot(token, prefix=prefix, sync=sync, guild=guild, shards=shards, shard_ids=ids))
    except KeyboardInterrupt:  # pragma: no cover - the signal handler normally takes Ctrl+C
        pass


def main() -> None:  # python -m bot.discord.runner
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(bot_command)
    try:
        app()
    except GhostwriteError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
