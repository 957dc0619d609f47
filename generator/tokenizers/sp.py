"""`sp`: SentencePiece (unigram by default, or BPE), trained in memory on the training text.

Settings that keep every text exact (see docs in field-notes): identity normalization, "\\n" as a
user-defined symbol, byte fallback (any character outside the vocabulary becomes its UTF-8 bytes), no
whitespace collapsing, no dummy prefix (so encodings of consecutive pieces concatenate), digits split.

Two details on top of SentencePiece:
- Text is encoded line by line (long lines in pieces cut before a space). Unigram's Viterbi search loses
  precision on very long inputs, and per-line encoding makes the ids independent of how a long text is
  chunked.
- SentencePiece writes a space as U+2581 "▁", so a real "▁" in the text would come back as a space. It is
  encoded as its three byte-fallback tokens instead, and decoding is done here, not by SentencePiece.
- Which characters get a piece of their own is decided here, not by SentencePiece's `character_coverage`
  (which refuses anything below 0.98: 2,051 characters of a Chinese novel, more than a 2,000-piece
  vocabulary holds). The most frequent characters up to the coverage (1.0, or 0.9995 for large alphabets)
  are kept as long as they fill at most 7/8 of the room beside the 258 fixed pieces; the training lines
  are cut at every other character, so SentencePiece never sees them and they are spelled in byte pieces.
  The space always has a piece: SentencePiece would spell a space it has no piece for as the bytes of "▁".
"""

from __future__ import annotations

import base64
import binascii
import codecs
import io
import itertools
import math
import os
import random
import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from generator.errors import GhostwriteError
from generator.tokenizers.base import (
    ID_DTYPE,
    UNK_TEXT,
    StreamDecoder,
    Tokenizer,
    check_dict,
    ids_to_ints,
    is_cjk_heavy,
)
from generator.tokenizers.char import char_counts

SP_TYPES = ("unigram", "bpe")
SPACE_MARK = "\u2581"
MAX_SEGMENT = 2048  # characters; longer lines are cut (before a space where possible)
MAX_TRAIN_CHARS = 3_000_000  # larger texts are trained on a random sample of their lines
MAX_VOCAB = 8000
CJK_COVERAGE = 0.9995
FIXED_PIECES = 258  # <unk>, "\n" and the 256 byte pieces
MIN_VOCAB = FIXED_PIECES + 1  # and the space
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def iter_segments(text: str) -> Iterator[str]:
    """`text` as lines (each keeping its "\\n"), lines longer than MAX_SEGMENT cut into pieces. The cuts
    depend only on the line itself."""
    pos, n = 0, len(text)
    while pos < n:
        nl = text.find("\n", pos)
        end = n if nl < 0 else nl + 1
        while end - pos > MAX_SEGMENT:
            window_end = pos + MAX_SEGMENT
            cut = window_end
            j = text.rfind(" ", pos + 1, window_end)
            while j > pos and text[j - 1] == " ":  # before the first space of a run
                j = text.rfind(" ", pos + 1, j)
            if j > pos:
                cut = j
            yield text[pos:cut]
            pos = cut
        yield text[pos:end]
        pos = end


def training_segments(text: str, max_chars: int, seed: int = 0, cut_at: set[str] | None = None) -> Iterator[str]:
    """The lines SentencePiece trains on: all of them, or for a text longer than `max_chars` a
    reproducible random sample of about `max_chars` characters of whole lines (streamed: memory stays
    bounded by the sample). With `cut_at`, lines are cut at those characters and at a literal "▁"
    (which encoding spells in bytes too), so no piece is learnt with them or across them."""
    segments = iter_segments(text)
    if len(text) > max_chars:
        rng = random.Random(seed)
        p = max_chars / len(text)
        segments = (seg for seg in segments if rng.random() < p)
    if cut_at is None:
        yield from segments
        return
    cut = re.compile("[" + "".join(re.escape(c) for c in sorted(cut_at | {SPACE_MARK})) + "]")
    for seg in segments:
        yield from (part for part in cut.split(seg) if part)
    yield " "  # the space gets its piece even when the text has none


def kept_characters(counts: dict[str, int], coverage: float, vocab_size: int) -> list[str]:
    """The characters that get a piece of their own, most frequent first: those SentencePiece would keep
    at `coverage`, at most 7/8 of the room beside the fixed pieces (the rest is left to pieces of
    several characters), and always the space. Every other character is spelled in byte pieces."""
    room = vocab_size - FIXED_PIECES
    if room < 1:
        raise GhostwriteError(
            f"vocabulary size {vocab_size} is too small for SentencePiece: it needs at least {MIN_VOCAB} "
            f"(256 byte pieces, the unknown piece, the newline and the space)"
        )
    ranked = sorted((c for c in counts if c != "\n"), key=lambda c: (-counts[c], ord(c)))
    limit = max(1, room - room // 8)
    kept = ranked[: min(required_chars(counts, coverage), limit)]
    if " " not in kept:
        kept = [*kept[: limit - 1], " "]
    return kept


def default_vocab_size(n_chars: int, required_chars: int, cjk: bool) -> int:
    """About 4*sqrt(characters), between 512 and 8000, and always room for the required characters, the
    256 byte pieces and some merges."""
    v = int(round(4 * math.sqrt(max(n_chars, 1)) / 64)) * 64
    v = min(max(v, 512), MAX_VOCAB)
    floor = required_chars + MIN_VOCAB + (1000 if cjk else 128)
    return max(v, floor)


def required_chars(counts: dict[str, int], coverage: float) -> int:
    """How many characters (the newline aside) the most frequent ones must be to cover `coverage` of
    the text, as SentencePiece counts its coverage."""
    freqs = sorted((n for c, n in counts.items() if c != "\n"), reverse=True)
    total = sum(freqs)
    if coverage >= 1.0:
        return len(freqs)
    acc, k = 0, 0
    for n in freqs:
        if total and acc / total >= coverage:
            break
        acc += n
        k += 1
    return k


class SentencePieceTokenizer(Tokenizer):
    kind = "sp"

    def __init__(self, model: bytes, sp_type: str = "unigram", unk_text: str = UNK_TEXT):
        super().__init__(unk_text)
        import sentencepiece as spm

        self.model = bytes(model)
        self.sp_type = sp_type
        try:
            self._sp = spm.SentencePieceProcessor(model_proto=self.model)
        except Exception as e:  # sentencepiece raises RuntimeError/OSError for a bad proto
            raise GhostwriteError(f"corrupt SentencePiece model: {e}") from None
        n = self._sp.get_piece_size()
        table: list[str | int] = []
        for i in range(n):
            if self._sp.is_byte(i):
                table.append(int(self._sp.id_to_piece(i)[3:5], 16))
            elif self._sp.is_unknown(i):
                table.append(unk_text)
            elif self._sp.is_control(i):
                table.append("")
            else:
                table.append(self._sp.id_to_piece(i).replace(SPACE_MARK, " "))
        self._table = table
        self.unk_id = self._sp.unk_id()
        byte_ids = {v: i for i, v in enumerate(table) if isinstance(v, int)}
        if len(byte_ids) != 256:
            raise GhostwriteError("SentencePiece model without byte fallback: cannot encode every text exactly")
        self._mark_ids = [byte_ids[b] for b in SPACE_MARK.encode("utf-8")]
        self._threads = max(1, min(4, os.cpu_count() or 1))

    def byte_values(self) -> list[int | None]:
        return [v if isinstance(v, int) else None for v in self._table]

    # --- training ------------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int | None = None,
        sp_type: str = "unigram",
        lang: str | None = None,
        max_train_chars: int = MAX_TRAIN_CHARS,
        seed: int = 0,
    ) -> SentencePieceTokenizer:
        import sentencepiece as spm

        if sp_type not in SP_TYPES:
            raise GhostwriteError(f"unknown SentencePiece type {sp_type!r} (choose {' or '.join(SP_TYPES)})")
        cjk = (lang or "").lower().split("-")[0] in ("zh", "ja", "ko") or is_cjk_heavy(text)
        counts = char_counts(text)
        # Full coverage for small alphabets; for Chinese (or any text with thousands of distinct
        # characters) the rarest 0.05% of characters are left to byte fallback.
        coverage = CJK_COVERAGE if cjk or len(counts) > 1000 else 1.0
        if vocab_size is None:
            vocab_size = default_vocab_size(len(text), required_chars(counts, coverage), cjk)
        # a smaller vocabulary keeps fewer characters; the others are spelled in byte pieces
        cut_at = set(counts) - set(kept_characters(counts, coverage, vocab_size)) - {"\n"}
        buf = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=training_segments(text, max_train_chars, seed, cut_at),
                model_writer=buf,
                model_type=sp_type,
                vocab_size=vocab_size,
                hard_vocab_limit=False,
                character_coverage=1.0,  # of the lines above, which hold the kept characters only
                normalization_rule_name="identity",
                user_defined_symbols=["\n"],
                byte_fallback=True,
                remove_extra_whitespaces=False,
                add_dummy_prefix=False,
                split_digits=True,
                allow_whitespace_only_pieces=True,
                max_sentence_length=4 * MAX_SEGMENT * 4,
                shrinking_factor=0.5,  # unigram: about 3x faster to train, same compression
                input_sentence_size=2_000_000,  # a second bound, on the number of lines
                shuffle_input_sentence=True,
                unk_id=0,
                bos_id=-1,
                eos_id=-1,
                pad_id=-1,
                num_threads=max(1, os.cpu_count() or 1),
                minloglevel=2,
            )
        except RuntimeError as e:
            raise GhostwriteError(f"SentencePiece training failed: {str(e).strip().splitlines()[-1]}") from None
        return cls(buf.getvalue(), sp_type=sp_type)

    # --- encoding --------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self._table)

    def _encode_block(self, text: str) -> np.ndarray:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates cannot go through SentencePiece
            text = _SURROGATE_RE.sub(self.unk_text, text)
        parts: list[str | None] = []  # None stands for a literal "▁"
        for seg in iter_segments(text):
            if SPACE_MARK in seg:
                for k, sub in enumerate(seg.split(SPACE_MARK)):
                    if k:
                        parts.append(None)
                    if sub:
                        parts.append(sub)
            else:
                parts.append(seg)
        strs = [p for p in parts if p is not None]
        encoded = self._sp.encode(strs, num_threads=self._threads) if strs else []
        if len(strs) == len(parts):
            lists: Iterable[list[int]] = encoded
        else:
            it = iter(encoded)
            lists = [self._mark_ids if p is None else next(it) for p in parts]
        flat = list(itertools.chain.from_iterable(lists))
        return np.array(flat, dtype=ID_DTYPE)

    def _last_cut(self, chunk: str, prev: str) -> int | None:
        nl = chunk.rfind("\n")
        return None if nl < 0 else nl + 1

    # --- decoding --------------------------------------------------------------------------------
    def decode(self, ids: Iterable[int]) -> str:
        table, n, unk = self._table, len(self._table), self.unk_text
        out: list[str] = []
        pending = bytearray()
        for i in ids_to_ints(ids):
            v = table[i] if 0 <= i < n else unk
            if isinstance(v, int):
                pending.append(v)
                continue
            if pending:
                out.append(pending.decode("utf-8", "replace"))
                pending.clear()
            out.append(v)
        if pending:
            out.append(pending.decode("utf-8", "replace"))
        return "".join(out)

    def stream_decoder(self) -> StreamDecoder:
        return _SPStreamDecoder(self._table, self.unk_text)

    def byte_piece_shares(self, ids: np.ndarray, n_chars: int, block: int = 1 << 24) -> dict[str, float]:
        """The share of tokens that are byte pieces, and of characters spelled in them (a character in
        bytes starts with one byte piece that is not a UTF-8 continuation byte)."""
        kind = np.zeros(len(self._table) + 1, dtype=np.int8)  # 1: continuation byte, 2: first byte
        for i, v in enumerate(self._table):
            if isinstance(v, int):
                kind[i] = 1 if 0x80 <= v < 0xC0 else 2
        n_bytes = n_first = 0
        for start in range(0, len(ids), block):
            k = kind[np.clip(np.asarray(ids[start : start + block], dtype=np.int64), 0, len(self._table))]
            n_bytes += int(np.count_nonzero(k))
            n_first += int(np.count_nonzero(k == 2))
        return {
            "byte_piece_share": round(n_bytes / max(len(ids), 1), 4),
            "byte_char_share": round(n_first / max(n_chars, 1), 4),
        }

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "sp_type": self.sp_type}

    def to_dict(self) -> dict[str, Any]:
        return {**self._base_dict(), "sp_type": self.sp_type, "model": base64.b64encode(self.model).decode("ascii")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SentencePieceTokenizer:
        check_dict(d, cls.kind)
        try:
            model = base64.b64decode(d["model"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            raise GhostwriteError(f"corrupt SentencePiece tokenizer: {e}") from None
        return cls(model, sp_type=d.get("sp_type", "unigram"), unk_text=d.get("unk_text", UNK_TEXT))


class _SPStreamDecoder(StreamDecoder):
    """Holds back byte-fallback tokens until they form complete UTF-8 characters."""

    def __init__(self, table: list[str | int], unk_text: str):
        super().__init__([], unk_text)
        self._sp_table = table
        self._dec = codecs.getincrementaldecoder("utf-8")("replace")
        self._held = False

    def feed(self, token_id: int) -> str:
        i = int(token_id)
        v = self._sp_table[i] if 0 <= i < len(self._sp_table) else self._unk
        if isinstance(v, int):
            self._held = True
            return self._dec.decode(bytes([v]))
        return self.flush() + v

    def state(self) -> object:
        return self._dec.getstate(), self._held

    def restore(self, state: object) -> None:
        dec, self._held = state  # type: ignore[misc]
        self._dec.setstate(dec)

    def flush(self) -> str:
        if not self._held:
            return ""
        self._held = False
        out = self._dec.decode(b"", final=True)
        self._dec.reset()
        return out
