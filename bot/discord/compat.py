"""One Cog class for discord.py and Red-DiscordBot.

Red 3.5 refuses a plain ``discord.ext.commands.Cog``; its own ``redbot.core.commands`` subclasses discord.py's
and has the same decorators (hybrid commands included), so importing it when Red is installed makes the same
class load in both.
"""

from __future__ import annotations

try:  # pragma: no cover - Red is not a dependency
    from redbot.core import commands  # type: ignore[import-not-found]

    RED = True
except ImportError:
    from discord.ext import commands

    RED = False

__all__ = ["commands", "RED"]
