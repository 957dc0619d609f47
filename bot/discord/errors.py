"""What the user is told when a command fails: one short line; anything unexpected goes to the log."""

from __future__ import annotations

import logging

from discord import app_commands

from bot.discord.compat import commands
from bot.service import GhostwriteError

log = logging.getLogger("ghostwrite.discord")


class Refused(Exception):
    """A request turned down before it started (cooldown, busy, shutting down); the text is for the user."""


def unwrap(error: BaseException) -> BaseException:
    """The exception behind discord.py's wrappers (command invoke / hybrid / app command errors)."""
    original = error
    while isinstance(original, (commands.CommandInvokeError, commands.HybridCommandError,
                                app_commands.CommandInvokeError)) and original.__cause__ is not None:
        original = original.__cause__
    return getattr(original, "original", original)


def error_text(ctx: commands.Context, error: BaseException) -> str:
    original = unwrap(error)
    if isinstance(original, (Refused, GhostwriteError)):
        return str(original)
    if isinstance(original, commands.CheckFailure):
        return str(original) or "You can't use that here."
    if isinstance(original, app_commands.TransformerError):
        return f"I couldn't use {original.value!r} there."
    if isinstance(original, commands.UserInputError):
        command = ctx.command
        usage = f" Usage: `{ctx.clean_prefix}{command.qualified_name} {command.signature}`" if command else ""
        return f"{original}{usage}"
    if isinstance(original, (commands.CommandOnCooldown, commands.MaxConcurrencyReached)):
        return str(original)
    log.error("error in %s", ctx.command and ctx.command.qualified_name, exc_info=original)
    return "Something went wrong; the details are in the bot's log."
