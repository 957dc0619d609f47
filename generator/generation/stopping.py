"""Where an output stops: `StopRule` turns "200 characters", "3 words", "2 sentences" or "1 paragraph"
into an exact cut of the output text, and `token_cap` bounds the tokens a request may take whatever its
unit (no torch here).
"""

from __future__ import annotations

from .settings import MAX_TOKENS, SamplingSettings

TERMINATORS = set(".!?。！？…")
CLOSERS = set("\"'’”)]}」』》〉）")
CJK_TERMINATORS = set("。！？…")


def is_cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2A6DF or 0xF900 <= o <= 0xFAFF


class StopRule:
    """Finds where `length` units of output end. `feed(text)` takes the output so far and returns the
    index to cut it at once the last unit is complete, or None to keep going."""

    def __init__(self, unit: str, length: int):
        self.unit, self.length = unit, length
        self.pos = 0  # how much of the output has been scanned
        self.count = 0
        self.in_word = False
        self.pending_end: int | None = None  # a sentence terminator seen, waiting for what follows
        self.pending_cjk = False

    def feed(self, text: str) -> int | None:
        if self.unit == "chars":
            return self.length if len(text) >= self.length else None
        if self.unit == "tokens":
            return None  # counted by the caller
        scan = getattr(self, f"_scan_{self.unit}")
        while self.pos < len(text):
            cut = scan(text, self.pos)
            self.pos += 1
            if cut is not None:
                return cut
        return None

    def held(self, text: str) -> int:
        """How many characters at the end of `text` a later cut may still take back, so they are not handed
        to the reader yet: a paragraph's newline, which the next one would make its break (the cut falls
        before both). Every other unit cuts at the character that completes it, never before it."""
        return 1 if self.unit == "paragraphs" and text.endswith("\n") else 0

    def _scan_words(self, text: str, i: int) -> int | None:
        ch = text[i]
        if ch.isspace():
            self.in_word = False
            return i if self.count >= self.length else None
        if is_cjk(ch) or not self.in_word:
            if self.count >= self.length:
                return i
            self.count += 1
        self.in_word = not is_cjk(ch)
        return None

    def _scan_sentences(self, text: str, i: int) -> int | None:
        ch = text[i]
        if self.pending_end is not None:
            if ch in CLOSERS:
                self.pending_end = i + 1
                return None
            if self.pending_cjk or ch.isspace():
                self.count += 1
                end, self.pending_end = self.pending_end, None
                if self.count >= self.length:
                    return end
            elif ch not in TERMINATORS:
                self.pending_end = None
        if ch in TERMINATORS:
            self.pending_end = i + 1
            self.pending_cjk = ch in CJK_TERMINATORS
        return None

    def _scan_paragraphs(self, text: str, i: int) -> int | None:
        if text[i] != "\n":
            if not text[i].isspace():
                self.in_word = True  # the current paragraph has text
            return None
        if i > 0 and text[i - 1] == "\n" and self.in_word:
            self.count += 1
            self.in_word = False
            if self.count >= self.length:
                return i - 1
        return None


def token_cap(settings: SamplingSettings) -> int:
    n, unit = settings.length, settings.unit
    per_unit = {"tokens": 1, "chars": 1, "words": 30, "sentences": 400, "paragraphs": 3000}[unit]
    return min(MAX_TOKENS, n * per_unit + (1 if unit == "chars" else 0))
