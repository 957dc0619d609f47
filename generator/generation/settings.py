"""Sampling controls: the settings, their validation, and where to stop (no torch here: frontends
validate settings without loading it; the token choice itself lives in choosing.py).

Settings are plain data (JSON-able) so the service can store them with every generation. The stop rule
turns "200 characters", "3 words", "2 sentences" or "1 paragraph" into an exact cut of the output text.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from .errors import GhostwriteError

UNITS = ("tokens", "chars", "words", "sentences", "paragraphs")
MAX_LENGTH = {"tokens": 10_000, "chars": 20_000, "words": 4_000, "sentences": 200, "paragraphs": 50}
MAX_PROMPT_CHARS = 20_000  # the longest prompt accepted; longer input is refused, not cut
MAX_TOKENS = 20_000  # a hard cap on the tokens one generation may take, whatever the unit
TERMINATORS = set(".!?。！？…")
CLOSERS = set("\"'’”)]}」』》〉）")
CJK_TERMINATORS = set("。！？…")


def is_cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2A6DF or 0xF900 <= o <= 0xFAFF


@dataclass
class SamplingSettings:
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    length: int = 200
    unit: str = "chars"
    seed: int | None = None

    @classmethod
    def from_dict(cls, d: dict | None) -> "SamplingSettings":
        d = dict(d or {})
        if "penalty" in d and "repetition_penalty" not in d:
            d["repetition_penalty"] = d.pop("penalty")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise GhostwriteError(f"unknown sampling setting {unknown[0]!r} (settings: {', '.join(sorted(known))})")
        s = cls(**d)
        s.validate()
        return s

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> "SamplingSettings":
        def num(name, cast):
            value = getattr(self, name)
            try:
                if isinstance(value, bool):
                    raise ValueError
                setattr(self, name, cast(value))
            except (TypeError, ValueError, OverflowError):
                shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
                raise GhostwriteError(f"{name} must be a number, got {shown}") from None
            return getattr(self, name)

        t = num("temperature", float)
        if math.isnan(t) or t < 0 or t > 10:
            raise GhostwriteError(f"temperature must be between 0 (greedy) and 10, got {t}")
        k = num("top_k", int)
        if k < 0:
            raise GhostwriteError(f"top_k must be 0 (off) or a positive whole number, got {k}")
        p = num("top_p", float)
        if math.isnan(p) or not 0 < p <= 1:
            raise GhostwriteError(f"top_p must be in (0, 1], got {p}")
        r = num("repetition_penalty", float)
        if math.isnan(r) or not 0 < r <= 10:
            raise GhostwriteError(f"repetition_penalty must be in (0, 10] (1 = off), got {r}")
        if self.unit not in UNITS:
            raise GhostwriteError(f"unit must be one of {', '.join(UNITS)}, got {self.unit!r}")
        n = num("length", int)
        if n <= 0 or n > MAX_LENGTH[self.unit]:
            raise GhostwriteError(f"length must be between 1 and {MAX_LENGTH[self.unit]:,} {self.unit}, got {n}")
        if self.seed is not None:
            s = num("seed", int)
            if not 0 <= s < 2**63:
                raise GhostwriteError(f"seed must be a non-negative whole number, got {s}")
        return self


def check_prompt(prompt: str) -> str:
    if not isinstance(prompt, str):
        raise GhostwriteError("prompt must be text")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise GhostwriteError(
            f"prompt too long: {len(prompt):,} characters (the limit is {MAX_PROMPT_CHARS:,})"
        )
    return prompt


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
