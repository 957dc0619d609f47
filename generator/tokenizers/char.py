"""`char`: one token per character (Unicode code point); id 0 is the unknown token."""

from __future__ import annotations

from typing import Any

import numpy as np

from generator.errors import GhostwriteError
from generator.tokenizers.base import ID_DTYPE, UNK_TEXT, TableTokenizer, check_dict


def codepoints(text: str) -> np.ndarray:
    """The code points of `text` as a uint32 array (lone surrogates kept as their values)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def char_counts(text: str, chunk: int = 1 << 22) -> dict[str, int]:
    """Character frequencies, computed with numpy in blocks (fast on multi-MB texts)."""
    total: dict[int, int] = {}
    for i in range(0, len(text), chunk):
        cps, counts = np.unique(codepoints(text[i : i + chunk]), return_counts=True)
        for cp, n in zip(cps.tolist(), counts.tolist()):
            total[cp] = total.get(cp, 0) + n
    return {chr(cp): n for cp, n in total.items()}


class CharTokenizer(TableTokenizer):
    kind = "char"

    def __init__(self, chars: str | list[str], unk_text: str = UNK_TEXT):
        super().__init__(unk_text)
        chars = list(chars)
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise GhostwriteError("char tokenizer: the vocabulary must be distinct single characters")
        self.chars = chars
        self._itos = [unk_text, *chars]
        self._stoi = {c: i for i, c in enumerate(chars, start=1)}
        cps = np.array([ord(c) for c in chars], dtype=np.int64)
        size = int(cps.max()) + 1 if len(cps) else 1
        self._table = np.zeros(size, dtype=ID_DTYPE)
        self._table[cps] = np.arange(1, len(chars) + 1, dtype=ID_DTYPE)

    @classmethod
    def train(cls, text: str, vocab_size: int | None = None) -> CharTokenizer:
        counts = char_counts(text)
        # Most frequent first (ties by code point), so a vocab_size cap keeps the common characters.
        ranked = sorted(counts, key=lambda c: (-counts[c], ord(c)))
        if vocab_size is not None:
            if vocab_size < 2:
                raise GhostwriteError(f"vocabulary size must be at least 2, not {vocab_size}")
            ranked = ranked[: vocab_size - 1]
        return cls(sorted(ranked))

    def with_chars(self, chars: list[str]) -> CharTokenizer:
        """This vocabulary plus those of `chars` it lacks, appended in their order (every id stays)."""
        new = [c for c in dict.fromkeys(chars) if c not in self._stoi]
        return CharTokenizer(self.chars + new, unk_text=self.unk_text) if new else self

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    def _encode_block(self, text: str) -> np.ndarray:
        cps = codepoints(text)
        inside = cps < len(self._table)
        return np.where(inside, self._table[np.where(inside, cps, 0)], 0).astype(ID_DTYPE, copy=False)

    def to_dict(self) -> dict[str, Any]:
        return {**self._base_dict(), "chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CharTokenizer:
        check_dict(d, cls.kind)
        try:
            return cls(d["chars"], unk_text=d.get("unk_text", UNK_TEXT))
        except (KeyError, TypeError) as e:
            raise GhostwriteError(f"corrupt char tokenizer: {e}") from None
