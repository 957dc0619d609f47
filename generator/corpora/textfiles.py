"""Reading text files for corpora: UTF-8 (BOM stripped, CRLF → LF) or a named encoding, with one clear
error naming the file and byte offset for binary or wrongly-encoded input; Project Gutenberg header and
footer stripping; collecting files from folders and globs."""

from __future__ import annotations

import codecs
import glob
import os
import re
from collections.abc import Iterable
from pathlib import Path

from generator.errors import GhostwriteError
from generator.paths import checked

TEXT_SUFFIXES = (".txt", ".md")


# --- reading ---------------------------------------------------------------------------------------
def decode_bytes(data: bytes, label: str, encoding: str | None = None) -> str:
    """Decode a file's bytes to normalized text (no BOM, LF line endings). Without `encoding` the data
    must be UTF-8; anything else is a GhostwriteError naming `label` and the byte offset."""
    encoding = check_encoding(encoding)
    if encoding is None or encoding in ("utf-8", "utf-8-sig"):
        if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
            raise GhostwriteError(f"{label}: looks like UTF-16 (byte order mark); pass --encoding utf-16")
        nul = data.find(b"\x00")
        if nul >= 0:
            raise GhostwriteError(f"{label}: binary data (NUL byte at byte offset {nul}), not a text file")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise GhostwriteError(
                f"{label}: not valid UTF-8 at byte offset {e.start} (byte 0x{data[e.start]:02x}); "
                "pass --encoding (e.g. gb18030, latin-1)"
            ) from None
    else:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as e:
            raise GhostwriteError(f"{label}: not valid {encoding} at byte offset {e.start}") from None
        nul = text.find("\x00")
        if nul >= 0:
            raise GhostwriteError(f"{label}: binary data (NUL character at character {nul}), not a text file")
    return normalize_text(text)


def normalize_text(text: str) -> str:
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def check_encoding(encoding: str | None) -> str | None:
    if encoding is None:
        return None
    try:
        return codecs.lookup(encoding).name
    except (LookupError, UnicodeError, ValueError):  # (a name with undecodable bytes or a NUL in it)
        raise GhostwriteError(f"unknown encoding {encoding!r}") from None


def read_text_file(path: str | os.PathLike[str], encoding: str | None = None) -> str:
    """Read one text file: UTF-8 (or `encoding`), BOM stripped, CRLF → LF. Missing, unreadable, empty,
    binary or wrongly encoded files raise GhostwriteError."""
    encoding = check_encoding(encoding)
    p = checked(path)  # a name too long for the system, a NUL in it: one line
    if not p.exists():
        raise GhostwriteError(f"file not found: {p}")
    if p.is_dir():
        raise GhostwriteError(f"{p} is a folder, not a text file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise GhostwriteError(f"cannot read {p}: {e.strerror or e}") from None
    text = decode_bytes(data, str(p), encoding)
    if not text.strip():
        raise GhostwriteError(f"{p} is empty")
    return text


# --- Project Gutenberg -----------------------------------------------------------------------------
_PG_START = re.compile(r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M)
_PG_END = re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M)
_PG_END_LINE = re.compile(r"^\s*End of (?:the )?Project Gutenberg.*$", re.I | re.M)
_PG_PRODUCED = re.compile(r"\A\s*(?:Produced by|E-text prepared by|Transcribed from)[^\n]*(?:\n[^\n]+)*\n\s*\n", re.I)


def strip_gutenberg_text(text: str) -> str:
    """The body of a Project Gutenberg e-text: what lies between the "*** START OF ..." and "*** END OF ..."
    lines, without the "Produced by" credit at the top and the "End of the Project Gutenberg EBook" line.
    A text without those markers is returned unchanged."""
    start = _PG_START.search(text)
    if start:
        text = text[start.end() :]
    end = _PG_END.search(text)
    if end:
        text = text[: end.start()]
    if start or end:
        last = None
        for last in _PG_END_LINE.finditer(text, max(0, len(text) - 2000)):  # noqa: B007 (the last match)
            pass
        if last is not None:
            text = text[: last.start()]
        text = _PG_PRODUCED.sub("", text, count=1)
        text = text.strip("\n") + "\n"
    return text


# --- collecting files ------------------------------------------------------------------------------
def _is_text_file(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in TEXT_SUFFIXES and not p.name.startswith(".")


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files named, the .txt/.md files inside folders (recursively, sorted) and glob matches, in order,
    without duplicates."""
    out: list[Path] = []
    seen: set[Path] = set()

    def take(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)

    paths = list(paths)
    if not paths:
        raise GhostwriteError("no files given")
    for raw in paths:
        s = os.fspath(raw)
        p = checked(Path(os.path.expanduser(s)))
        if p.is_file():
            take(p)
        elif p.is_dir():
            found = sorted(
                (f for f in p.rglob("*") if _is_text_file(f) and not any(part.startswith(".") for part in f.relative_to(p).parts)),
                key=lambda f: f.relative_to(p).as_posix(),
            )
            if not found:
                raise GhostwriteError(f"no .txt or .md files in {p}")
            for f in found:
                take(f)
        elif glob.has_magic(s):
            found = sorted(Path(m) for m in glob.glob(os.path.expanduser(s), recursive=True))
            files = [f for f in found if _is_text_file(f)]
            if not files:
                raise GhostwriteError(f"no .txt or .md files match {s}")
            for f in files:
                take(f)
        else:
            raise GhostwriteError(f"file not found: {s}")
    return out


def join_texts(texts: list[str]) -> str:
    """One text stays exactly as it is; several are joined with a blank line between them."""
    if len(texts) == 1:
        return texts[0]
    return "\n".join(t if t.endswith("\n") else t + "\n" for t in texts)
