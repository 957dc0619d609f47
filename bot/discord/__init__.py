"""Ghostwrite on Discord: a discord.py 2.x extension (and Red-DiscordBot cog).

Load it into any ``commands.Bot``::

    await bot.load_extension("bot.discord")

It adds one Cog (`Ghostwrite`) with hybrid commands; it never syncs the command tree (the host does:
``await bot.tree.sync()``), never replaces the host's error handlers and ignores other bots. Configure it
with ``GHOSTWRITE_DISCORD_*`` environment variables (see `bot.discord.config`), or set
``bot.ghostwrite_service`` / ``bot.ghostwrite_config`` before loading.
"""

from __future__ import annotations

import logging

__red_end_user_data_statement__ = (
    "Ghostwrite stores the text you ask it to continue, what it wrote, your user id and name, and your 👍/👎 "
    "votes, to show your history and improve models, and whether you used /ignoreme or /optin. /mydata sends you "
    "all of it; /forget deletes it (an /ignoreme stays until /ignoreme off). A server may store metadata only."
)

log = logging.getLogger("ghostwrite.discord")


async def setup(bot) -> None:
    from bot.discord.cog import Ghostwrite

    cog = Ghostwrite(bot, service=getattr(bot, "ghostwrite_service", None),
                     config=getattr(bot, "ghostwrite_config", None))
    await bot.add_cog(cog)


async def teardown(bot) -> None:
    # discord.py removes the extension's Cog (awaiting its cog_unload) before calling this.
    if bot.get_cog("Ghostwrite") is not None:
        await bot.remove_cog("Ghostwrite")
