"""The running story of a REPL session: a list of turns (what the writer added, what the model wrote).

The story is plain text made of turns in order. A turn is the writer's text (empty for /continue) and
the model's continuation after it, with the id of the generation that produced it. /undo drops the last
turn, /retry replaces the model's part of the last turn. Saving renders the story as .txt (the text) or
.md (the writer's words in bold, the model's escaped as Markdown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NO_SPACE_BEFORE = set(",.;:!?)]}’”…")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~])")
_MD_LINE_START = re.compile(r"^(\s*)([-+]|\d+[.)])(?=\s)", re.M)


def joiner(story: str, addition: str) -> str:
    """What goes between the story so far and the writer's next words: a space when the two would
    otherwise run together, nothing when either side already has the whitespace or punctuation."""
    if not story or not addition:
        return ""
    if story[-1].isspace() or addition[0].isspace() or addition[0] in _NO_SPACE_BEFORE:
        return ""
    return " "


@dataclass
class Turn:
    user: str = ""  # the writer's text, with the separator that joins it to the story before it
    model: str = ""  # the continuation (partial when interrupted)
    generation_id: int | None = None
    status: str | None = None  # complete | interrupted | None (not generated yet)

    @property
    def text(self) -> str:
        return self.user + self.model


class Story:
    def __init__(self) -> None:
        self.turns: list[Turn] = []

    def __bool__(self) -> bool:
        return bool(self.text())

    def __len__(self) -> int:
        return len(self.text())

    def text(self) -> str:
        return "".join(t.text for t in self.turns)

    def tail(self, n: int) -> str:
        return self.text()[-n:] if n > 0 else ""

    def add(self, user_text: str) -> Turn:
        """Start a turn with the writer's text (may be empty, for /continue)."""
        turn = Turn(user=joiner(self.text(), user_text) + user_text if user_text else "")
        self.turns.append(turn)
        return turn

    @property
    def last(self) -> Turn | None:
        return self.turns[-1] if self.turns else None

    def last_generation_id(self, before: int | None = None) -> int | None:
        """The newest stored generation in the story (among the first `before` turns)."""
        for turn in reversed(self.turns[:before]):
            if turn.generation_id is not None:
                return turn.generation_id
        return None

    def undo(self) -> Turn | None:
        return self.turns.pop() if self.turns else None

    def clear(self) -> None:
        self.turns.clear()

    # ---- rendering ------------------------------------------------------------------------------------
    def to_text(self) -> str:
        text = self.text()
        return text if text.endswith("\n") else text + "\n"

    def to_markdown(self, model: str | None = None, when: str | None = None) -> str:
        about = "Written with ghostwrite"
        if model:
            about += f" ({model})"
        if when:
            about += f", {when}"
        body = "".join(_md_bold(t.user) + md_escape(t.model) for t in self.turns).strip("\n")
        body = re.sub(r"(?<=[^\n])\n(?=[^\n])", "  \n", body)  # a line break stays a line break
        return f"*{about}. The writer's words are in bold.*\n\n{body}\n"


def md_escape(text: str) -> str:
    """Text that renders as itself in Markdown (emphasis, headings, lists, links, HTML neutralised)."""
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _MD_LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


def _md_bold(text: str) -> str:
    """Each line's words in **bold**, the whitespace around them left outside the markers."""
    out = []
    for line in text.split("\n"):
        m = re.match(r"^(\s*)(.*?)(\s*)$", line, re.S)
        lead, core, trail = m.group(1), m.group(2), m.group(3)
        out.append(f"{lead}**{md_escape(core)}**{trail}" if core else line)
    return "\n".join(out)


def escape_line(text: str) -> str:
    """One continuation on one line (piped mode): backslash → \\\\, newline → \\n, carriage return →
    \\r. Reversible: `codecs.decode(line, "unicode_escape")` is not safe for non-ASCII, use
    `unescape_line`."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def unescape_line(line: str) -> str:
    return re.sub(r"\\(\\|n|r)", lambda m: {"\\": "\\", "n": "\n", "r": "\r"}[m.group(1)], line)
