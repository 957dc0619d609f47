"""Retry / continue buttons that keep working after a restart.

They are `DynamicItem`s: the generation id lives in the custom id (``gw:retry:42``), the bot registers the
pattern once (in the Cog's ``cog_load``) and any old message's buttons are routed to the Cog that is loaded
now. Nothing is kept in memory per message.
"""

from __future__ import annotations

import discord

ACTIONS = {"retry": ("Retry", "🔁"), "more": ("Continue", "⏩")}


class GenerationButton(discord.ui.DynamicItem[discord.ui.Button], template=r"gw:(?P<action>retry|more):(?P<gid>[0-9]{1,19})"):
    def __init__(self, action: str, generation_id: int):
        label, emoji = ACTIONS[action]
        super().__init__(discord.ui.Button(label=label, emoji=emoji, style=discord.ButtonStyle.secondary,
                                           custom_id=f"gw:{action}:{generation_id}"))
        self.action = action
        self.generation_id = generation_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match, /):
        return cls(match["action"], int(match["gid"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        cog = interaction.client.get_cog("Ghostwrite")  # type: ignore[union-attr]
        if cog is None:
            await interaction.response.send_message("Ghostwrite is not loaded right now.", ephemeral=True,
                                                    allowed_mentions=discord.AllowedMentions.none())
            return
        await cog.on_generation_button(interaction, self.action, self.generation_id)


def generation_view(generation_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(GenerationButton("retry", generation_id))
    view.add_item(GenerationButton("more", generation_id))
    return view
