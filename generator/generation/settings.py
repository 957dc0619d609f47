"""The sampling settings contract: `SamplingSettings`, their bounds and validation, and the prompt limit
(no torch here: frontends validate settings without loading it; the token choice lives in sampling.py,
where to stop in stopping.py).

Settings are plain data (JSON-able) so the service can store them with every generation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..errors import GhostwriteError

UNITS = ("tokens", "chars", "words", "sentences", "paragraphs")
MAX_LENGTH = {"tokens": 10_000, "chars": 20_000, "words": 4_000, "sentences": 200, "paragraphs": 50}
MAX_PROMPT_CHARS = 20_000  # the longest prompt accepted; longer input is refused, not cut
MAX_TOKENS = 20_000  # a hard cap on the tokens one generation may take, whatever the unit


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
