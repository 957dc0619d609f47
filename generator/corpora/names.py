"""Corpus names: what a corpus (and a recipe) may be called — the one rule both corpus.py and recipes.py
check, kept apart so neither imports the other for it."""

from __future__ import annotations

import re

from generator.errors import GhostwriteError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RESERVED = {"con", "prn", "aux", "nul"}  # folder names Windows refuses


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name.lower() in _RESERVED:
        raise GhostwriteError(
            f"invalid corpus name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name
