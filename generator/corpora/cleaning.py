"""Declarative text cleaning for corpus recipes: the `[clean]` table of `corpora/NAME.toml`.

Every file of a recipe is decoded first (UTF-8 or `encoding`; a BOM removed, CRLF and CR → LF: see
generator/corpora/textfiles.py), then cleaned by these steps, always in this order, each one left out when its key is:

    strip_gutenberg = true        # keep the body between Project Gutenberg's START and END lines
    remove = ["天涯在线书库《www\\.tianyabook\\.com》"]   # regexes: every match deleted (a line left empty stays, blank)
    drop_lines = ["xstt5\\.com"]  # regexes: a line in which one matches is deleted, line break and all
    strip_lines = "both"          # or "right" / "left": strip each line of
    strip_chars = " \u3000"       #   these characters (default: any whitespace)
    strip_prefix = ["正文 "]       # regexes: a match at the start of a (stripped) line is deleted
    split_lines = "\u3000{2,}"    # regex: a match inside a line becomes a line break (the pieces stripped again)
    collapse_blank_lines = 1      # runs of blank lines capped at N; none at the start or end; one final newline

Regexes are Python's (`re`). `clean_text(text, spec)` applies a checked spec; `check_clean(table)` checks a
recipe's table and says what is wrong in one line.
"""

from __future__ import annotations

import re
from typing import Any

from generator.corpora.textfiles import check_encoding, strip_gutenberg_text

STRIP_SIDES = ("both", "right", "left")
_PATTERN_LISTS = ("remove", "drop_lines", "strip_prefix")
KEYS = ("encoding", "strip_gutenberg", *_PATTERN_LISTS, "strip_lines", "strip_chars", "split_lines", "collapse_blank_lines")


def check_clean(table: Any) -> dict[str, Any]:
    """A recipe's `[clean]` table, checked and normalized (lists of patterns, a known encoding); raises
    ValueError with a one-line reason."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise ValueError("[clean] must be a table")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ValueError(f"[clean] has unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
    out = dict(table)
    if "encoding" in out:
        out["encoding"] = check_encoding(out["encoding"])
    if "strip_gutenberg" in out and not isinstance(out["strip_gutenberg"], bool):
        raise ValueError("[clean] strip_gutenberg must be true or false")
    for key in _PATTERN_LISTS:
        if key in out:
            pats = [out[key]] if isinstance(out[key], str) else out[key]
            if not isinstance(pats, list) or not all(isinstance(p, str) and p for p in pats):
                raise ValueError(f"[clean] {key} must be a regex or a list of regexes")
            for p in pats:
                _compile(key, p)
            out[key] = list(pats)
    if "split_lines" in out:
        if not isinstance(out["split_lines"], str) or not out["split_lines"]:
            raise ValueError("[clean] split_lines must be a regex")
        if _compile("split_lines", out["split_lines"]).fullmatch(""):
            raise ValueError("[clean] split_lines must not match an empty string")
    if "strip_lines" in out and out["strip_lines"] not in STRIP_SIDES:
        raise ValueError(f"[clean] strip_lines must be one of {', '.join(STRIP_SIDES)}")
    if "strip_chars" in out:
        if not isinstance(out["strip_chars"], str) or not out["strip_chars"]:
            raise ValueError("[clean] strip_chars must be a non-empty string")
        out.setdefault("strip_lines", "both")
    n = out.get("collapse_blank_lines")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise ValueError("[clean] collapse_blank_lines must be a whole number (0 or more)")
    return out


def _compile(key: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(f"[clean] {key}: bad regex {pattern!r} ({e})") from None


def _stripper(spec: dict[str, Any]):
    side = spec.get("strip_lines")
    chars = spec.get("strip_chars")  # None: any whitespace
    if side == "both":
        return lambda s: s.strip(chars)
    if side == "right":
        return lambda s: s.rstrip(chars)
    if side == "left":
        return lambda s: s.lstrip(chars)
    return None


def clean_text(text: str, spec: dict[str, Any]) -> str:
    """`text` (already decoded: LF line endings, no BOM) cleaned by the steps of a checked spec."""
    if spec.get("strip_gutenberg"):
        text = strip_gutenberg_text(text)
    for p in spec.get("remove", []):
        text = re.sub(p, "", text, flags=re.MULTILINE)
    line_steps = ("drop_lines", "strip_lines", "strip_prefix", "split_lines", "collapse_blank_lines")
    if not any(k in spec for k in line_steps):
        return text
    lines = text.split("\n")
    drops = [re.compile(p) for p in spec.get("drop_lines", [])]
    if drops:
        lines = [ln for ln in lines if not any(d.search(ln) for d in drops)]
    strip = _stripper(spec)
    if strip is not None:
        lines = [strip(ln) for ln in lines]
    prefixes = [re.compile(p) for p in spec.get("strip_prefix", [])]
    if prefixes:
        out = []
        for ln in lines:
            for p in prefixes:
                m = p.match(ln)
                if m:
                    ln = ln[m.end() :]
            out.append(ln)
        lines = out
    if "split_lines" in spec:
        split = re.compile(spec["split_lines"])
        out = []
        for ln in lines:
            pieces = split.sub("\n", ln).split("\n")
            out.extend(pieces if strip is None else [strip(s) for s in pieces])
        lines = out
    text = "\n".join(lines)
    n = spec.get("collapse_blank_lines")
    if n is not None:
        text = re.sub(f"\n{{{n + 2},}}", "\n" * (n + 1), text).strip("\n") + "\n"
    return text
