"""Originality: how much of a passage is copied verbatim from the training text.

An index over the training split — a suffix array of its UTF-8 bytes from pydivsufsort (libdivsufsort:
about 0.05 s per MB) — answers, for each character of a passage, the longest span starting there that the
training text contains (its "matching statistics"), by binary search over the sorted suffixes. From them:

- the longest span copied verbatim (characters);
- the share of the passage's word 8-grams found in the training text (for Chinese and Japanese text,
  which has no spaces between words, its 12-character spans).

Whitespace runs are folded to one space on both sides first, so a copied sentence wrapped at another
column still counts as copied. The suffix array is built once per training split and cached beside the
judges (see style/cache.py).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np

from ..errors import GhostwriteError
from ..paths import atomic_write_bytes

FORMAT = 1
WORD_N = 8  # word n-grams for spaced languages
CHAR_N = 12  # character spans for Chinese and Japanese
MAX_MATCH = 4096  # bytes compared at most from one position: a longer copied span counts as this long
#                   (about 4,000 characters of English, 1,365 of Chinese; a style passage is 400)
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def fold(text: str) -> str:
    """Whitespace runs → one space (the form the index and the passages are compared in)."""
    return _SPACE.sub(" ", text)


@dataclass
class Index:
    """A suffix array over `data` (the folded training text in UTF-8)."""

    data: bytes
    sa: np.ndarray

    @classmethod
    def build(cls, text: str) -> Index:
        from pydivsufsort import divsufsort

        data = fold(text).encode("utf-8", "surrogatepass")
        if not data:
            raise GhostwriteError("cannot index an empty text")
        return cls(data, np.asarray(divsufsort(data)))

    def save(self, path) -> None:
        buf = io.BytesIO()
        np.savez(buf, data=np.frombuffer(self.data, dtype=np.uint8), sa=self.sa,
                 format=np.array([FORMAT]))
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path) -> Index:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"][0]) != FORMAT:
                raise ValueError("another format")
            return cls(z["data"].tobytes(), z["sa"])

    # ---- queries ------------------------------------------------------------------------------------
    def longest_at(self, pattern: bytes) -> int:
        """The length in bytes of the longest prefix of `pattern` found anywhere in the text."""
        data, sa = self.data, self.sa
        p = pattern[:MAX_MATCH]
        m = len(p)
        lo, hi = 0, len(sa)
        while lo < hi:  # the first suffix not below p
            mid = (lo + hi) // 2
            s = int(sa[mid])
            if data[s:s + m] < p:
                lo = mid + 1
            else:
                hi = mid
        best = 0
        for k in (lo - 1, lo):
            if 0 <= k < len(sa):
                best = max(best, _common(p, data, int(sa[k])))
        return best

    def matches(self, text: str) -> np.ndarray:
        """For each character i of the folded `text`: the longest span (characters) starting at i that the
        training text contains."""
        raw = text.encode("utf-8", "surrogatepass")
        starts = np.cumsum([0] + [len(c.encode("utf-8", "surrogatepass")) for c in text])  # byte offsets
        out = np.zeros(len(text), dtype=np.int64)
        for i in range(len(text)):
            nb = self.longest_at(raw[starts[i]:])
            out[i] = int(np.searchsorted(starts, starts[i] + nb, side="right")) - 1 - i  # whole characters
        return out


def _common(p: bytes, data: bytes, s: int) -> int:
    """Length of the common prefix of p and data[s:]."""
    q = data[s:s + len(p)]
    if q == p:
        return len(p)
    lo, hi = 0, len(q)  # binary search on equal prefixes (slices compare in C)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if p[:mid] == q[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def spaced(lang: str | None, text: str) -> bool:
    """Whether `text` is written with spaces between words (not Chinese or Japanese)."""
    if lang in ("zh", "ja"):
        return False
    if lang:
        return True
    cjk = sum(1 for c in text if "\u3040" <= c <= "\u9fff")
    return cjk < 0.3 * max(1, len(text))


@dataclass
class Originality:
    longest_copied: int  # characters
    copied_share: float  # of the word 8-grams (or 12-character spans) found in the training text
    ngrams: int  # how many were checked

    def to_dict(self) -> dict:
        return {"longest_copied_chars": self.longest_copied, "copied_ngram_share": round(self.copied_share, 4),
                "ngrams": self.ngrams}


def originality(index: Index, passage: str, lang: str | None = None) -> Originality:
    """The longest verbatim span of `passage` in the training text and the share of its word 8-grams (or
    12-character spans) found there."""
    text = fold(passage)
    ms = index.matches(text) if text else np.zeros(0, np.int64)
    longest = int(ms.max()) if len(ms) else 0
    if spaced(lang, text):
        words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        spans = [(words[k][0], words[k + WORD_N - 1][1]) for k in range(len(words) - WORD_N + 1)]
    else:
        spans = [(i, i + CHAR_N) for i in range(len(text) - CHAR_N + 1)]
    found = sum(1 for a, b in spans if ms[a] >= b - a)
    return Originality(longest, found / len(spans) if spans else 0.0, len(spans))
