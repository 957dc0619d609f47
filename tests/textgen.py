"""Small texts made here, so the core tests need no downloaded corpus."""

from __future__ import annotations

import random

WORDS = ("the king queen lord lady night day love death sword crown heart blood fair sweet gentle "
         "noble brother sister father mother speak hear see know come go stay fly rest sleep dream").split()


def synthetic_text(n_lines: int = 1500, seed: int = 0) -> str:
    """A small English-like corpus made here, so the core tests need no downloaded text."""
    rng = random.Random(seed)
    lines = []
    for i in range(n_lines):
        if i % 12 == 0:
            lines.append("")
            lines.append(rng.choice(["KING", "QUEEN", "ROMEO", "JULIET"]) + ":")
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 10))]
        words[0] = words[0].capitalize()
        lines.append(" ".join(words) + rng.choice([".", ",", "!", "?", ";"]))
    return "\n".join(lines) + "\n"
