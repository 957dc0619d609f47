"""/models, /history and /forget."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.discord import render
from bot.discord.compat import commands
from bot.discord.replies import NO_MENTIONS


def describe_card(card: dict, default: str | None = None) -> str:
    name = str(card.get("name", "?"))
    line = f"**{render.escape(name)}** v{card.get('version', '?')}"
    if name == default:
        line += " (default)"
    details = []
    if card.get("tokenizer"):
        tok = card["tokenizer"]
        details.append(tok.get("kind", "") if isinstance(tok, dict) else str(tok))
    if card.get("params"):
        details.append(f"{int(card['params']) / 1e6:.1f}M params")
    if card.get("val_bpc") is not None:
        details.append(f"{float(card['val_bpc']):.2f} bpc")
    corpus = card.get("corpus")
    if isinstance(corpus, dict):
        corpus = corpus.get("name") or corpus.get("title")
    if corpus:
        details.append(f"trained on {render.escape(str(corpus))}")
    if card.get("author"):
        details.append(f"in the voice of {render.escape(str(card['author']))}")
    details = [d for d in [*details, style_figures(card.get("style"))] if d]
    return line + (" — " + ", ".join(details) if details else "")


def style_figures(style) -> str:
    """`ghostwrite eval --style`'s figures from the card: how often its writing is attributed to its own
    author (real text's rate beside it) and the median longest span copied from its corpus."""
    try:
        return (f"style {float(style['accuracy']):.0%} attributed to its author (real text {float(style['ceiling']):.0%}), "
                f"copies {float(style['longest_copied_median']):g} chars (median longest)")
    except (TypeError, KeyError, ValueError):
        return ""


class InfoMixin:
    @commands.hybrid_command(name="models")
    async def models(self, ctx: commands.Context):
        """List the models you can continue with."""
        cards = await self.io(self.svc.models)
        self.model_cache = cards
        if not cards:
            await ctx.send("No models yet: an admin can train one with `/retrain`.", ephemeral=True,
                           allowed_mentions=NO_MENTIONS)
            return
        try:
            default = (await self.io(self.svc.resolve, None))[0]
        except Exception:
            default = None
        text = "\n".join(describe_card(c, default) for c in sorted(cards, key=lambda c: str(c.get("name"))))
        pages = render.split_pages(text, render.MESSAGE_LIMIT)
        for page in pages:
            await ctx.send(page, allowed_mentions=NO_MENTIONS)

    @commands.hybrid_command(name="history")
    @app_commands.describe(count="How many (most recent first)")
    async def history(self, ctx: commands.Context, count: commands.Range[int, 1, 25] = 5):
        """Your last continuations (only you see them)."""
        count = min(count, self.config.history_limit)
        gens = await self.io(self.svc.history, source="discord", user_id=ctx.author.id, limit=count)
        if not gens:
            await ctx.send("You have no stored continuations.", ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        lines = []
        for g in gens:
            when = discord.utils.format_dt(g.created_at, "R") if g.created_at else ""
            snippet = render.escape((g.prompt[-60:] + "|" + g.output[:80]).replace("\n", " "))
            lines.append(f"`#{g.id}` {render.escape(g.model_spec)} {g.status} {when}\n> {snippet}")
        await ctx.send(render.clip("\n".join(lines)), ephemeral=True, allowed_mentions=NO_MENTIONS)

    @commands.hybrid_command(name="forget")
    async def forget(self, ctx: commands.Context):
        """Delete everything Ghostwrite stored about you (continuations, votes, stories you started)."""
        counts = await self.io(self.svc.forget, ctx.author.id)
        await self.reset_cooldown(ctx.author.id)
        done = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if k != "training_runs")
        await ctx.send(f"Done: deleted {done}.", ephemeral=True, allowed_mentions=NO_MENTIONS)
