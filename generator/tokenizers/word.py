"""`word`: lossless word-level tokens.

The text is split into words (letters, with inner apostrophes: "don't", "o'er"), digit runs, whitespace
runs and single other characters (punctuation, symbols); each CJK ideograph or kana is a token of its own.
Every piece of the text belongs to exactly one token, so joining the tokens gives the text back.

The vocabulary holds every character seen in training (most frequent first, if `vocab_size` forces a cap)
and then the most frequent multi-character tokens. A token outside the vocabulary is encoded as its
characters, so any prompt encodes and `decode(encode(x)) == x` whenever x is made of known characters;
unknown characters become the unknown token.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

from generator.errors import GhostwriteError
from generator.tokenizers.base import (
    CJK_CLASS,
    ID_DTYPE,
    UNK_TEXT,
    TableTokenizer,
    check_dict,
)
from generator.tokenizers.char import char_counts

SPLITTER = "v1"
_LETTER = rf"[^\W\d_{CJK_CLASS}]"
TOKEN_RE = re.compile(
    rf"{_LETTER}+(?:['\u2019]{_LETTER}+)*"  # words, with inner apostrophes
    rf"|\d+"  # digit runs
    rf"|\s+"  # whitespace runs (spaces, newlines, indentation)
    rf"|.",  # anything else: one character (punctuation, symbols, each CJK character)
    re.DOTALL,
)
# A place where the tokenizer starts afresh: after whitespace followed by non-whitespace, or after a CJK
# character (always a token of its own).
_CUT_RE = re.compile(rf"(?:\s(?=\S)|[{CJK_CLASS}])")

DEFAULT_MAX_VOCAB = 8000
MIN_COUNT = 2


def split_tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


def _last_cut(chunk: str, prev: str) -> int | None:
    """See Tokenizer._last_cut."""
    text = prev + chunk
    for start in (max(0, len(text) - 4096), 0):
        last = None
        for last in _CUT_RE.finditer(text, start):  # noqa: B007 (the last match)
            pass
        if last is not None:
            return last.end() - len(prev)
        if start == 0:
            break
    return None


def iter_blocks(text: str, size: int = 1 << 20) -> Iterator[str]:
    """`text` in blocks of about `size` characters that tokenize independently."""
    pos = 0
    while pos < len(text):
        end = min(len(text), pos + size)
        if end < len(text):
            cut = _last_cut(text[pos:end], text[pos - 1] if pos else "")
            if cut:
                end = pos + cut
            else:  # no cut point in this window: take up to the next one
                m = _CUT_RE.search(text, end)
                end = m.end() if m else len(text)
        yield text[pos:end]
        pos = end


class WordTokenizer(TableTokenizer):
    kind = "word"

    def __init__(self, tokens: list[str], unk_text: str = UNK_TEXT):
        super().__init__(unk_text)
        if len(set(tokens)) != len(tokens) or not all(isinstance(t, str) and t for t in tokens):
            raise GhostwriteError("word tokenizer: the vocabulary must be distinct non-empty strings")
        self.tokens = list(tokens)
        self._itos = [unk_text, *self.tokens]
        self._stoi = {t: i for i, t in enumerate(self.tokens, start=1)}

    @classmethod
    def train(cls, text: str, vocab_size: int | None = None, min_count: int = MIN_COUNT) -> WordTokenizer:
        chars = char_counts(text)
        counts: Counter[str] = Counter()
        for block in iter_blocks(text):  # streams: memory is bounded by the number of distinct tokens
            counts.update(TOKEN_RE.findall(block))
        ranked_chars = sorted(chars, key=lambda c: (-chars[c], ord(c)))
        words = sorted((t for t, n in counts.items() if len(t) > 1 and n >= min_count), key=lambda t: (-counts[t], t))
        if vocab_size is None:
            keep_chars = ranked_chars
            keep_words = words[: max(0, DEFAULT_MAX_VOCAB - 1 - len(keep_chars))]
        else:
            if vocab_size < 2:
                raise GhostwriteError(f"vocabulary size must be at least 2, not {vocab_size}")
            keep_chars = ranked_chars[: vocab_size - 1]
            keep_words = words[: max(0, vocab_size - 1 - len(keep_chars))]
        return cls(sorted(keep_chars) + keep_words)

    def with_chars(self, chars: list[str]) -> WordTokenizer:
        """This vocabulary plus those of `chars` it lacks, appended in their order (every id stays). Words
        are not added: a word outside the vocabulary is spelt with its characters, as any unknown word is."""
        new = [c for c in dict.fromkeys(chars) if c not in self._stoi]
        return WordTokenizer(self.tokens + new, unk_text=self.unk_text) if new else self

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    def _encode_block(self, text: str) -> np.ndarray:
        get = self._stoi.get
        toks = TOKEN_RE.findall(text)
        ids = [get(t, -1) for t in toks]
        if -1 in ids:  # out-of-vocabulary tokens: their characters (unknown ones → unk)
            out: list[int] = []
            for t, i in zip(toks, ids):
                if i >= 0:
                    out.append(i)
                else:
                    out.extend([get(c, 0) for c in t])
            ids = out
        return np.array(ids, dtype=ID_DTYPE)

    def _last_cut(self, chunk: str, prev: str) -> int | None:
        return _last_cut(chunk, prev)

    def to_dict(self) -> dict[str, Any]:
        return {**self._base_dict(), "splitter": SPLITTER, "tokens": self.tokens}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WordTokenizer:
        check_dict(d, cls.kind)
        if d.get("splitter", SPLITTER) != SPLITTER:
            raise GhostwriteError(f"word tokenizer: unknown splitter {d.get('splitter')!r}; upgrade ghostwrite")
        try:
            return cls(list(d["tokens"]), unk_text=d.get("unk_text", UNK_TEXT))
        except (KeyError, TypeError) as e:
            raise GhostwriteError(f"corrupt word tokenizer: {e}") from None
