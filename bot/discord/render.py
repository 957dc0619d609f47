"""Turning a continuation into Discord messages: the prompt in bold, the text, a short footer, and pages of at
most 2,000 characters split at line or sentence boundaries.

Pure functions, no discord.py objects, so they are easy to test. Markdown in the prompt and the generated text
is escaped (a model imitating a book full of underscores should not italicise half the reply); mentions are
left as text because every send uses ``AllowedMentions.none()``.
"""

from __future__ import annotations

import re

import discord

from bot.service import footer_parts

MESSAGE_LIMIT = 2000
# Pages are cut shorter than the limit so that a footer or a "still writing" marker always fits on the last
# page: a page never has to be re-split once a later page exists, so streamed pages settle.
PAGE_BODY = 1890
FOOTER_LIMIT = MESSAGE_LIMIT - PAGE_BODY - 2
PROMPT_SHOWN = 600  # a longer prompt is shown as "…" + its last characters (the continuation follows them)
CURSOR = " ▌"

_SENTENCE_END = re.compile(r"[.!?…。！？；;:][\"'”’)\]]*\s+")


def escape(text: str) -> str:
    """Escape Discord markdown (keeps links), so generated text shows literally."""
    return discord.utils.escape_markdown(text, ignore_links=True)


def _cut_point(text: str, limit: int) -> int:
    """Where to end a page of `text` (len(text) > limit): after the last newline in the window, else after the
    last sentence end, else at the last space, else hard at `limit` (never between a backslash and the
    character it escapes)."""
    window = text[:limit]
    floor = limit // 3  # a boundary too early would waste most of the page
    nl = window.rfind("\n")
    if nl >= floor:
        return nl + 1
    ends = [m.end() for m in _SENTENCE_END.finditer(window)]
    if ends and ends[-1] >= floor:
        return ends[-1]
    sp = window.rfind(" ")
    if sp >= floor:
        return sp + 1
    cut = limit
    while cut > 1 and _trailing_backslashes(text[:cut]) % 2 == 1:
        cut -= 1
    return cut


def _trailing_backslashes(s: str) -> int:
    return len(s) - len(s.rstrip("\\"))


def split_pages(text: str, limit: int = PAGE_BODY) -> list[str]:
    """Split `text` into pages of at most `limit` characters at line or sentence boundaries.

    Every character of `text` lands in exactly one page, in order (``"".join(pages) == text``), so nothing the
    model wrote is lost; Discord trims leading/trailing whitespace of each message when it shows it.
    The split of a page depends only on the text up to ``limit`` characters past its start, so pages are
    stable while more text is appended (streaming never rewrites a settled page).
    """
    if limit < 2:
        raise ValueError("limit must be at least 2")
    pages: list[str] = []
    while len(text) > limit:
        cut = _cut_point(text, limit)
        pages.append(text[:cut])
        text = text[cut:]
    if text or not pages:
        pages.append(text)
    return pages


def show_prompt(prompt: str, limit: int = PROMPT_SHOWN) -> str:
    """The prompt as shown in bold: escaped, whitespace-trimmed, long prompts shortened from the front."""
    prompt = prompt.strip()
    if len(prompt) > limit:
        prompt = "…" + prompt[-(limit - 1):].lstrip()
    return f"**{escape(prompt)}**" if prompt else ""


def _joiner(prompt: str, continuation: str) -> str:
    """The prompt is bold and the continuation plain; keep a real space/newline between them if the model
    produced one (Discord would otherwise glue "**To be**or")."""
    if continuation[:1] in ("\n",):
        return ""
    if continuation[:1] == " " or (prompt[-1:].isspace() if prompt else False):
        return " "
    return ""


def body_text(prompt: str, continuation: str) -> str:
    head = show_prompt(prompt)
    cont = escape(continuation)
    if not head:
        return cont
    return head + _joiner(prompt, continuation) + cont.lstrip(" ")


def footer(model: str, version: int | None, settings: dict, *, status: str = "complete",
           generation_id: int | None = None) -> str:
    """`-# shakespeare v3 · temp 0.8 · 200 chars · #42` (Discord's small-text line)."""
    name = escape(model)
    parts = [f"{name} v{version}" if version is not None else name]
    parts += footer_parts(settings)  # as the settings contract shows them: off values left out
    tail = []  # what a reader needs whatever the settings: never cut
    if status == "interrupted":
        tail.append("interrupted")
    elif status == "error":
        tail.append("failed")
    if generation_id is not None:
        tail.append(f"#{generation_id}")
    head = "-# " + " · ".join(parts)
    end = "".join(f" · {t}" for t in tail)
    if len(head) + len(end) > FOOTER_LIMIT:  # long settings (temp 4.94066e-324 ...) give way, not the id
        head = head[: FOOTER_LIMIT - len(end) - 1].rstrip(" ·") + "…"
    return head + end


def render_pages(prompt: str, continuation: str, foot: str | None = None, *, streaming: bool = False,
                 limit: int = PAGE_BODY) -> list[str]:
    """The messages of a reply: body pages, the footer (or a cursor while streaming) on the last one.

    Each page is at most ``MESSAGE_LIMIT`` characters; with `streaming` the last page ends in a cursor."""
    pages = split_pages(body_text(prompt, continuation), limit)
    last = pages[-1].rstrip()
    if streaming:
        last = (last + CURSOR) if last else CURSOR.strip()
    elif foot:
        last = f"{last}\n{foot}" if last else foot
    pages[-1] = last or "\u200b"  # Discord rejects empty content
    for i, page in enumerate(pages[:-1]):
        pages[i] = page.rstrip() or "\u200b"
    return pages


def render_story(text: str, limit: int = PAGE_BODY) -> list[str]:
    return [p.rstrip() or "\u200b" for p in split_pages(escape(text), limit)]


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A single short message (errors, status): cut with an ellipsis if it would not fit."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
