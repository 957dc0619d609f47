"""Corpora: the registry of named corpora and the train/validation split (reading files: textfiles.py).

A registered corpus lives in `<home>/corpora/NAME/`:
- `text.txt`: the whole text, normalized: UTF-8 without BOM, LF line endings;
- `meta.json`: name, author, lang, source, sha256 (of text.txt), files, size_bytes, characters,
  distinct_characters, created (ISO 8601, UTC), and how it was read (encoding, strip_gutenberg).
Both are written into a temporary folder that is renamed into place, so a corpus is either all there or
not at all.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from generator.corpora.names import NAME_RE, check_name  # noqa: F401  (re-exported)
from generator.corpora.textfiles import (  # noqa: F401  (re-exported: corpus.read_text_file is the public name)
    TEXT_SUFFIXES,
    check_encoding,
    decode_bytes,
    expand_paths,
    join_texts,
    normalize_text,
    read_text_file,
    strip_gutenberg_text,
)
from generator.errors import GhostwriteError
from generator.paths import atomic_write_bytes, checked, corpora_dir, fsync_dir

TEXT_FILE = "text.txt"
META_FILE = "meta.json"
MIN_TRAIN_CHARS = 128
MIN_VAL_CHARS = 32


@dataclass
class CorpusInfo:
    name: str
    sha256: str
    size_bytes: int
    characters: int
    distinct_characters: int
    author: str | None = None
    lang: str | None = None
    source: str = ""
    files: list[str] = field(default_factory=list)
    created: str = ""
    encoding: str | None = None
    strip_gutenberg: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the recipe a corpus was fetched with

    @property
    def path(self) -> Path:
        return corpora_dir() / self.name

    @property
    def text_path(self) -> Path:
        return self.path / TEXT_FILE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CorpusInfo:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


@dataclass
class Corpus:
    name: str
    text: str
    info: dict[str, Any]
    path: Path | None = None  # the text file

    @property
    def sha256(self) -> str:
        return self.info["sha256"]


# --- the registry ----------------------------------------------------------------------------------
def text_stats(text: str) -> dict[str, Any]:
    data = text.encode("utf-8")
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "characters": len(text),
        "distinct_characters": len(set(text)),
    }


def detect_lang(text: str) -> str | None:
    """A rough guess: zh/ja/ko for CJK-heavy text, en for mostly ASCII letters, otherwise None."""
    from generator.tokenizers.base import cjk_fraction

    sample = text[:200_000]
    if cjk_fraction(sample) >= 0.3:
        kana = sum(1 for c in sample if "\u3040" <= c <= "\u30ff")
        hangul = sum(1 for c in sample if "\uac00" <= c <= "\ud7af")
        if kana > len(sample) * 0.05:
            return "ja"
        return "ko" if hangul > len(sample) * 0.05 else "zh"
    letters = [c for c in sample if c.isalpha()]
    if letters and sum(c.isascii() for c in letters) / len(letters) > 0.98:
        return "en"
    return None


def unsurrogate(text: str) -> str:
    """Lone surrogates (what Python makes of undecodable bytes in argv and file names) → U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _utcnow() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def corpus_exists(name: str) -> bool:
    return NAME_RE.fullmatch(name or "") is not None and (corpora_dir() / name / META_FILE).is_file()


def save_corpus(
    name: str,
    text: str,
    *,
    author: str | None = None,
    lang: str | None = None,
    source: str = "",
    files: list[str] | None = None,
    encoding: str | None = None,
    strip_gutenberg: bool = False,
    extra: dict[str, Any] | None = None,
    replace: bool = False,
) -> CorpusInfo:
    """Register `text` as corpus `name` (atomically). An existing corpus with the same text is kept as is
    (its metadata updated); with a different text it is an error unless `replace`."""
    # bytes that are not UTF-8 (an --author from argv, a file's name) cannot be written into the metadata
    # or printed back: each becomes U+FFFD, as in every stored prompt
    author, lang, source = (None if v is None else unsurrogate(v) for v in (author, lang, source))
    files = None if files is None else [unsurrogate(f) for f in files]
    check_name(name)
    if not text.strip():
        raise GhostwriteError(f"corpus {name!r} would be empty")
    stats = text_stats(text)
    info = CorpusInfo(
        name=name,
        author=author,
        lang=lang or detect_lang(text),
        source=source,
        files=list(files or []),
        created=_utcnow(),
        encoding=encoding,
        strip_gutenberg=strip_gutenberg,
        extra=dict(extra or {}),
        **stats,
    )
    root = corpora_dir()
    target = root / name
    if (target / META_FILE).is_file():
        old = _read_meta(target)
        if old is not None and old.sha256 == info.sha256 and (target / TEXT_FILE).is_file():
            info.created = old.created
            atomic_write_bytes(target / META_FILE, _meta_bytes(info))
            return info
        if not replace:
            raise GhostwriteError(f"corpus {name!r} already exists with a different text (use --force to replace it)")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=root))
    try:
        atomic_write_bytes(tmp / TEXT_FILE, text.encode("utf-8"))
        atomic_write_bytes(tmp / META_FILE, _meta_bytes(info))
        old_dir = None
        if target.exists():
            old_dir = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=root))
            os.replace(target, old_dir / name)
        os.replace(tmp, target)
        fsync_dir(root)
        if old_dir is not None:
            shutil.rmtree(old_dir, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise GhostwriteError(f"could not save corpus {name!r} in {root}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _meta_bytes(info: CorpusInfo) -> bytes:
    return (json.dumps(info.to_dict(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _read_meta(folder: Path) -> CorpusInfo | None:
    try:
        d = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        return CorpusInfo.from_dict(d)
    except (OSError, ValueError, TypeError):
        return None


def add_corpus(
    name: str,
    paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    author: str | None = None,
    lang: str | None = None,
    encoding: str | None = None,
    strip_gutenberg: bool = False,
    replace: bool = False,
) -> CorpusInfo:
    """Register local files, folders or globs (.txt, .md) as corpus `name`."""
    check_name(name)
    encoding = check_encoding(encoding)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = expand_paths(paths)
    texts = []
    for f in files:
        t = read_text_file(f, encoding)
        if strip_gutenberg:
            t = strip_gutenberg_text(t)
        texts.append(t)
    text = join_texts(texts)
    if not text.strip():
        raise GhostwriteError(f"corpus {name!r} would be empty")
    shown = [str(f.resolve()) for f in files]
    return save_corpus(
        name,
        text,
        author=author,
        lang=lang,
        source="local: " + (shown[0] if len(shown) == 1 else f"{len(shown)} files"),
        files=shown,
        encoding=encoding,
        strip_gutenberg=strip_gutenberg,
        replace=replace,
    )


def corpus_info(name: str) -> CorpusInfo:
    check_name(name)
    folder = corpora_dir() / name
    if not (folder / META_FILE).is_file():
        raise GhostwriteError(_unknown_message(name))
    info = _read_meta(folder)
    if info is None:
        raise GhostwriteError(f"corpus {name!r} is damaged (unreadable {META_FILE}); add it again with --force")
    return info


def list_corpora() -> list[CorpusInfo]:
    root = corpora_dir()
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not (folder / META_FILE).is_file():
            continue
        info = _read_meta(folder)
        if info is not None:
            out.append(info)
    return out


def remove_corpus(name: str) -> None:
    info = corpus_info(name)
    shutil.rmtree(info.path)


def _looks_like_path(s: str) -> bool:
    return "/" in s or os.sep in s or s.startswith(("~", ".")) or Path(s).suffix.lower() in TEXT_SUFFIXES


def load_corpus(name_or_path: str | os.PathLike[str], encoding: str | None = None) -> Corpus:
    """A registered corpus by name, or a text file / folder / glob by path."""
    s = os.fspath(name_or_path)
    if not s:
        raise GhostwriteError("no corpus given")
    pathlike = isinstance(name_or_path, os.PathLike) or _looks_like_path(s)
    on_disk = checked(Path(os.path.expanduser(s))).exists()  # (a name too long for the system: one line)
    if corpus_exists(s) and not (pathlike and on_disk):
        info = corpus_info(s)
        p = info.text_path
        try:
            data = p.read_bytes()
        except OSError:
            raise GhostwriteError(f"corpus {s!r} is damaged (missing {TEXT_FILE}); add it again with --force") from None
        if hashlib.sha256(data).hexdigest() != info.sha256:
            raise GhostwriteError(f"corpus {s!r} is damaged (checksum mismatch of {TEXT_FILE}); add it again with --force")
        return Corpus(name=s, text=data.decode("utf-8"), info=info.to_dict(), path=p)
    if not on_disk and not glob.has_magic(s):
        raise GhostwriteError(f"corpus file not found: {s}" if pathlike else _unknown_message(s))
    p = Path(os.path.expanduser(s))
    files = expand_paths([s])
    text = join_texts([read_text_file(f, encoding) for f in files])
    name = p.stem if p.is_file() else (p.name or "corpus")
    shown = [str(f.resolve()) for f in files]
    info = CorpusInfo(
        name=name,
        lang=detect_lang(text),
        source="file: " + (shown[0] if len(shown) == 1 else f"{len(shown)} files"),
        files=shown,
        created=_utcnow(),
        encoding=check_encoding(encoding),
        **text_stats(text),
    )
    return Corpus(name=name, text=text, info=info.to_dict(), path=files[0] if len(files) == 1 else None)


def _unknown_message(name: str) -> str:
    try:
        from generator.corpora.recipes import find_recipe

        if find_recipe(name) is not None:
            return f"corpus {name!r} is not downloaded yet: run `ghostwrite corpus get {name}`"
    except GhostwriteError:
        pass
    return f"unknown corpus {name!r} (see `ghostwrite corpus list`, or give a path to a text file)"


# --- train/validation split ------------------------------------------------------------------------
def split_text(
    text: str,
    val_fraction: float = 0.1,
    min_train_chars: int = MIN_TRAIN_CHARS,
    min_val_chars: int = MIN_VAL_CHARS,
) -> tuple[str, str]:
    """(train, validation): the last `val_fraction` of the characters is validation, the split nanoGPT
    uses (`n = int(len * (1 - val_fraction))`), so figures on tinyshakespeare compare."""
    try:
        f = float(val_fraction)
    except (TypeError, ValueError):
        raise GhostwriteError(f"validation fraction must be a number, not {val_fraction!r}") from None
    if not (0.0 < f < 1.0):
        raise GhostwriteError(f"validation fraction must be between 0 and 1 (exclusive), not {val_fraction}")
    n = int(len(text) * (1.0 - f))
    train, val = text[:n], text[n:]
    if len(train) < min_train_chars or len(val) < min_val_chars:
        raise GhostwriteError(
            f"corpus too small to split: {len(text)} characters give {len(train)} for training and {len(val)} for "
            f"validation (need at least {min_train_chars} and {min_val_chars})"
        )
    return train, val
