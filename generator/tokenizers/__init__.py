"""Tokenizers: `char`, `word` and `sp` (SentencePiece), one interface, saved with the model as JSON.

    tok = train_tokenizer("sp", train_text, vocab_size=None, sp_type="unigram", lang=None)
    ids = tok.encode("To be")            # list[int];  tok.encode_array(text) -> np.int32 array
    tok.decode(ids)                       # exact for sp; exact for char/word text of known characters
    d = tok.to_dict()                     # JSON-able;  tokenizer_from_dict(d) restores it
    dec = tok.stream_decoder(); dec.feed(i) -> str; dec.flush() -> str
    for arr in tok.encode_iter(chunks): ...   # long texts, same ids as encoding the whole
"""

from __future__ import annotations

from typing import Any

from generator.errors import GhostwriteError
from generator.tokenizers.base import UNK_TEXT, StreamDecoder, Tokenizer, cjk_fraction, is_cjk_heavy
from generator.tokenizers.char import CharTokenizer
from generator.tokenizers.sp import SP_TYPES, SentencePieceTokenizer
from generator.tokenizers.word import WordTokenizer

KINDS: dict[str, type[Tokenizer]] = {
    "char": CharTokenizer,
    "word": WordTokenizer,
    "sp": SentencePieceTokenizer,
}

__all__ = [
    "KINDS",
    "SP_TYPES",
    "UNK_TEXT",
    "CharTokenizer",
    "SentencePieceTokenizer",
    "StreamDecoder",
    "Tokenizer",
    "WordTokenizer",
    "cjk_fraction",
    "is_cjk_heavy",
    "tokenizer_from_dict",
    "train_tokenizer",
]


def train_tokenizer(
    kind: str,
    text: str,
    vocab_size: int | None = None,
    sp_type: str = "unigram",
    lang: str | None = None,
) -> Tokenizer:
    """Build a tokenizer of `kind` ("char", "word" or "sp") from the training text. `vocab_size=None`
    picks a size suited to the text; `sp_type` ("unigram" or "bpe") and `lang` matter for "sp" only."""
    if kind not in KINDS:
        raise GhostwriteError(f"unknown tokenizer {kind!r} (choose {', '.join(KINDS)})")
    if not text:
        raise GhostwriteError("cannot build a tokenizer from an empty text")
    if vocab_size is not None and vocab_size < 2:
        raise GhostwriteError(f"vocabulary size must be at least 2, not {vocab_size}")
    if kind == "sp":
        return SentencePieceTokenizer.train(text, vocab_size=vocab_size, sp_type=sp_type, lang=lang)
    return KINDS[kind].train(text, vocab_size=vocab_size)


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    """Restore a tokenizer saved with `to_dict()`."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if not isinstance(kind, str) or kind not in KINDS:
        raise GhostwriteError(f"unknown or corrupt tokenizer (kind {kind!r})")
    return KINDS[kind].from_dict(d)
