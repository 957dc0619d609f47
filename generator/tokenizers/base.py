"""The interface every tokenizer implements, and helpers they share.

A tokenizer turns text into integer ids and back. Id 0 is always the unknown token (`unk_id`); decoding
it (or any id outside the vocabulary) gives `unk_text`, by default U+FFFD, never an exception.

Long texts are encoded in blocks. Each tokenizer says where a text may be cut so that encoding the
pieces separately gives exactly the tokens of the whole (`_last_cut`), and `encode_iter` buffers the
incoming chunks up to such a point. So `encode_array(text)` and `encode_iter(any chunking of text)` give
the same ids.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from generator.errors import GhostwriteError

UNK_TEXT = "\ufffd"
FORMAT_VERSION = 1
ID_DTYPE = np.int32

# CJK ideographs, kana and CJK symbols: written without spaces, so each is a token of its own in the
# word tokenizer and counts towards "this text is Chinese/Japanese" for SentencePiece's coverage.
CJK_CLASS = (
    "\u2e80-\u2fdf"  # radicals supplement, Kangxi radicals
    "\u3005-\u3007"  # 々 〆 〇
    "\u3021-\u3029"  # Hangzhou numerals
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3400-\u4dbf"  # extension A
    "\u4e00-\u9fff"  # unified ideographs
    "\uf900-\ufaff"  # compatibility ideographs
    "\U00020000-\U0003134f"  # extensions B-G
)
_CJK_RE = re.compile(f"[{CJK_CLASS}]")


def cjk_fraction(text: str, sample: int = 200_000) -> float:
    """Share of CJK characters among the non-space characters of (a sample of) `text`."""
    if len(text) > sample:
        step = len(text) // 4
        text = "".join(text[i * step : i * step + sample // 4] for i in range(4))
    visible = len(text) - sum(text.count(c) for c in " \n\t\r\u3000")
    if visible <= 0:
        return 0.0
    return len(_CJK_RE.findall(text)) / visible


def is_cjk_heavy(text: str) -> bool:
    return cjk_fraction(text) >= 0.3


class StreamDecoder:
    """Incremental decoding: `feed(id)` returns the text that became decodable with this id (possibly
    ""), `flush()` whatever is still held back. The concatenation of everything returned equals
    `tokenizer.decode(ids)`."""

    def __init__(self, table: Sequence[str], unk_text: str):
        self._table = table
        self._unk = unk_text

    def feed(self, token_id: int) -> str:
        i = int(token_id)
        if 0 <= i < len(self._table):
            return self._table[i]
        return self._unk

    def flush(self) -> str:
        return ""

    def state(self) -> object:
        """What `restore` needs to go back to this point (a banned string's rewind)."""
        return None

    def restore(self, state: object) -> None:
        pass


class Tokenizer(ABC):
    kind: ClassVar[str]
    unk_id: int = 0

    def __init__(self, unk_text: str = UNK_TEXT):
        self.unk_text = unk_text

    # --- the interface -------------------------------------------------------------------------
    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def encode_array(self, text: str, chunk_chars: int = 1 << 20) -> np.ndarray:
        """All ids of `text` as one int32 array; encodes in blocks of about `chunk_chars`."""
        if len(text) <= chunk_chars:
            return self._encode_block(text) if text else np.zeros(0, ID_DTYPE)
        parts = list(self.encode_iter(text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)))
        return np.concatenate(parts) if parts else np.zeros(0, ID_DTYPE)

    def encode_iter(self, chunks: Iterable[str]) -> Iterator[np.ndarray]:
        """Encode a text given as consecutive chunks (e.g. read from a file), yielding int32 arrays
        whose concatenation equals `encode_array("".join(chunks))`, whatever the chunking."""
        pending: list[str] = []
        for chunk in chunks:
            if not chunk:
                continue
            prev = pending[-1][-1] if pending else ""
            cut = self._last_cut(chunk, prev)
            if cut is None:
                pending.append(chunk)
                continue
            block = "".join(pending) + chunk[:cut]
            pending = [chunk[cut:]] if cut < len(chunk) else []
            if block:
                yield self._encode_block(block)
        if pending:
            yield self._encode_block("".join(pending))

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str: ...

    @abstractmethod
    def stream_decoder(self) -> StreamDecoder: ...

    @abstractmethod
    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict[str, Any]) -> Tokenizer: ...

    def byte_values(self) -> list[int | None] | None:
        """Per token, the byte a byte piece stands for (None for the others); None without byte pieces."""
        return None

    def byte_piece_shares(self, ids: np.ndarray, n_chars: int) -> dict[str, float]:
        """For a tokenizer with byte pieces (sp): how much of an encoded text they spell, as shares of its
        tokens and of its `n_chars` characters (for the model card). Empty for the others."""
        return {}

    def describe(self) -> dict[str, Any]:
        """A short JSON-able summary for model cards."""
        return {"kind": self.kind, "vocab_size": self.vocab_size}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} vocab_size={self.vocab_size}>"

    # --- for subclasses --------------------------------------------------------------------------
    @abstractmethod
    def _encode_block(self, text: str) -> np.ndarray: ...

    def _last_cut(self, chunk: str, prev: str) -> int | None:
        """The largest index c such that the text seen so far + chunk[:c] can be encoded on its own
        (the tokens don't depend on what follows); None if there is no such point in this chunk.
        `prev` is the last character before `chunk` ("" at the start)."""
        return len(chunk)

    def _base_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "format": FORMAT_VERSION, "unk_text": self.unk_text}


class TableTokenizer(Tokenizer):
    """A tokenizer whose ids index a table of strings (`self._itos`): char and word."""

    _itos: list[str]

    def decode(self, ids: Iterable[int]) -> str:
        itos, unk, n = self._itos, self.unk_text, len(self._itos)
        return "".join([itos[i] if 0 <= i < n else unk for i in ids_to_ints(ids)])

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder(self._itos, self.unk_text)


def check_dict(d: Any, kind: str) -> None:
    if not isinstance(d, dict) or d.get("kind") != kind:
        raise GhostwriteError(f"not a saved {kind} tokenizer")
    fmt = d.get("format", FORMAT_VERSION)
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise GhostwriteError(f"corrupt {kind} tokenizer (format {fmt!r})")
    if not isinstance(d.get("unk_text", UNK_TEXT), str):
        raise GhostwriteError(f"corrupt {kind} tokenizer (unk_text {d.get('unk_text')!r})")
    if fmt > FORMAT_VERSION:
        raise GhostwriteError(
            f"this {kind} tokenizer was saved by a newer ghostwrite (format {d.get('format')}); upgrade ghostwrite"
        )


def ids_to_ints(ids: Iterable[int]) -> Iterable[int]:
    if isinstance(ids, np.ndarray):
        return ids.tolist()
    tolist = getattr(ids, "tolist", None)  # torch tensors
    if callable(tolist):
        out = tolist()
        return out if isinstance(out, list) else [out]
    return ids
