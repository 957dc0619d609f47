"""A trivial extension used by the harness self-tests (not part of ghostwrite)."""

import discord
from discord import app_commands
from discord.ext import commands


class Sample(commands.Cog):
    def __init__(self, bot):
        self.bot = bot
        self.reactions: list[tuple[int, int, str]] = []

    @commands.command()
    async def ping(self, ctx):
        msg = await ctx.send("pong")
        await msg.edit(content="pong!")

    @commands.command()
    async def mkrole(self, ctx, name: str):
        role = await ctx.guild.create_role(name=name, colour=discord.Colour(0x123456))
        await ctx.send(f"made {role.name}")

    @app_commands.command(name="echo", description="echo text")
    async def echo(self, interaction: discord.Interaction, text: str):
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content=text[:2000])
        if len(text) > 2000:
            await interaction.followup.send(text[2000:], wait=True)

    @app_commands.command(name="secret", description="ephemeral")
    async def secret(self, interaction: discord.Interaction):
        await interaction.response.send_message("shh", ephemeral=True)

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent):
        self.reactions.append((payload.message_id, payload.user_id, str(payload.emoji)))

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message):
        if message.author.bot:
            return
        if message.content == "hello":
            await message.channel.send("hi", allowed_mentions=discord.AllowedMentions.none())


async def setup(bot):
    await bot.add_cog(Sample(bot))
