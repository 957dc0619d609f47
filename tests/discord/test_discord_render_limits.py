"""Splitting, formatting, cooldowns and the concurrency gate (no Discord objects needed)."""

import asyncio
import time

import pytest

from bot.discord import render
from bot.discord.limits import Busy, GenerationGate, OnCooldown, UserCooldown


def test_split_keeps_every_character_and_respects_the_limit():
    text = ("To be, or not to be, that is the question. " * 30 + "\n") * 5
    pages = render.split_pages(text, 500)
    assert "".join(pages) == text
    assert all(len(p) <= 500 for p in pages)
    assert len(pages) > 1


def test_split_prefers_lines_then_sentences_then_spaces():
    lines = "\n".join(f"line {i} " + "x" * 40 for i in range(60))
    pages = render.split_pages(lines, 300)
    assert all(p.endswith("\n") for p in pages[:-1])
    prose = "One sentence here. " * 40
    pages = render.split_pages(prose, 300)
    assert all(p.endswith(". ") for p in pages[:-1])
    words = "word " * 200
    pages = render.split_pages(words, 301)
    assert all(p.endswith(" ") for p in pages[:-1])


def test_split_without_boundaries_cuts_hard_but_not_inside_an_escape():
    text = "\\*" * 700
    pages = render.split_pages(text, 301)
    assert "".join(pages) == text
    assert all(len(p) <= 301 and not p.endswith("\\") for p in pages)


def test_split_pages_are_stable_while_text_grows():
    base = "Some words. " * 400
    first = render.split_pages(base[:3000], 1000)
    later = render.split_pages(base, 1000)
    assert later[: len(first) - 1] == first[:-1]


def test_render_pages_bold_prompt_footer_and_limit():
    foot = render.footer("shakespeare", 3, {"temperature": 0.8, "length": 200, "unit": "chars"}, generation_id=7)
    assert foot == "-# shakespeare v3 · 200 chars · temp 0.8 · #7"  # the settings in the contract's order
    pages = render.render_pages("To *be*", " or not to be", foot)
    assert pages == ["**To \\*be\\*** or not to be\n" + foot]
    long = render.render_pages("Start", " and then. " * 500, foot)
    assert len(long) > 1 and all(len(p) <= render.MESSAGE_LIMIT for p in long)
    assert long[0].startswith("**Start** and then.")
    assert long[-1].endswith(foot) and not any(foot in p for p in long[:-1])


def test_render_streaming_shows_cursor_and_never_empty():
    assert render.render_pages("", "", streaming=True) == ["▌"]
    assert render.render_pages("Hi", " there", streaming=True) == ["**Hi** there ▌"]
    assert render.render_pages("", "", None) == ["\u200b"]


def test_long_prompt_is_shortened_from_the_front():
    shown = render.show_prompt("a" * 5000)
    assert shown.startswith("**…") and len(shown) <= render.PROMPT_SHOWN + 4


def test_mentions_stay_text():
    pages = render.render_pages("@everyone", " <@123> hi")
    assert "@everyone" in pages[0] and "<@123>" in pages[0]


def test_cooldown_window():
    now = [0.0]
    cd = UserCooldown(rate=2, per=10, clock=lambda: now[0])
    cd.hit(1)
    cd.hit(1)
    with pytest.raises(OnCooldown) as e:
        cd.hit(1)
    assert e.value.retry_after == pytest.approx(10)
    cd.hit(2)  # other users are unaffected
    now[0] = 10.5
    cd.hit(1)


async def test_gate_caps_concurrency_and_refuses_beyond_the_queue():
    gate = GenerationGate(max_concurrent=2, max_queue=1, initial_estimate=4)
    release = asyncio.Event()
    peak = 0

    async def job(ticket):
        nonlocal peak
        async with ticket:
            peak = max(peak, gate.running)
            await release.wait()

    tickets = [gate.admit() for _ in range(3)]
    with pytest.raises(Busy):
        gate.admit()
    tasks = [asyncio.create_task(job(t)) for t in tickets]
    await asyncio.sleep(0.05)
    assert gate.running == 2 and gate.waiting == 1
    with pytest.raises(Busy) as busy:
        gate.admit()
    assert busy.value.retry_after == 4  # one waiting + this one, 4 s each, 2 at a time
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 2 and gate.running == 0 and gate.waiting == 0
    gate.admit().cancel()
    assert gate.waiting == 0


async def test_gate_queue_timeout_reports_busy():
    gate = GenerationGate(max_concurrent=1, max_queue=1, queue_timeout=0.05)
    first = gate.admit()
    await first.__aenter__()
    second = gate.admit()
    with pytest.raises(Busy):
        async with second:
            pass
    await first.__aexit__(None, None, None)
    assert gate.running == 0 and gate.waiting == 0


class _RecordingSurface:
    """A reply target that records when each page was sent or edited."""

    def __init__(self):
        self.calls: list[tuple[float, str, str]] = []

    async def send_page(self, index, content, view):
        self.calls.append((time.monotonic(), "send", content))
        return object()

    async def edit_page(self, message, index, content, view):
        self.calls.append((time.monotonic(), "edit", content))


async def test_streaming_reply_shows_the_first_words_at_once_then_keeps_the_interval():
    from bot.discord.replies import StreamingReply

    surface = _RecordingSurface()
    reply = StreamingReply(surface, "ROMEO:", interval=0.6)
    reply.start()
    await asyncio.sleep(0.2)
    assert surface.calls == []  # nothing to show yet
    fed_at = time.monotonic()
    reply.feed(" Good")
    await asyncio.sleep(0.1)
    assert len(surface.calls) == 1 and surface.calls[0][0] - fed_at < 0.1 and "Good" in surface.calls[0][2]
    for word in (" morrow", ",", " friar"):
        reply.feed(word)
        await asyncio.sleep(0.05)
    assert len(surface.calls) == 1  # later words wait for the edit interval
    await reply.finish("-# foot")
    times = [t for t, _, _ in surface.calls]
    assert [kind for _, kind, _ in surface.calls] == ["send", "edit"]
    assert times[1] - times[0] >= 0.55 and "friar" in surface.calls[-1][2] and "foot" in surface.calls[-1][2]
