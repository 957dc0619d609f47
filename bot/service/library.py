"""What the service keeps besides generations: the registered models, the corpora (and the recipes that
fetch them), training and evaluation, and files uploaded to train on. Thin: each call is the generator's
own, so that frontends reach it through the one door (and never import `generator`)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from generator import registry
from generator.errors import GhostwriteError
from generator.paths import atomic_write_bytes, home

_FOLDER = re.compile(r"[^A-Za-z0-9_.-]+")


class Library:
    """Mixed into ContinuationService: models, corpora, training, uploads."""

    resolve: Callable[[str | None], tuple[str, int]]

    # ---- models -------------------------------------------------------------------------------------
    def models(self, all_versions: bool = False) -> list[dict]:
        """The registered models' cards (the newest version of each; every version with all_versions)."""
        return registry.list_models(all_versions=all_versions)

    def card(self, spec: str | None) -> dict:
        return registry.read_card(*self.resolve(spec))

    def parse_model(self, spec: str) -> tuple[str, int | None]:
        """`name` or `name@vN` → (name, N or None), or the one-line error saying what is wrong with it."""
        return registry.parse_spec(spec)

    def remove_model(self, spec: str) -> list[int]:
        """Delete `name@vN`, or every version of `name`; returns the versions removed."""
        name, version = registry.parse_spec(spec)
        registry.resolve(spec)  # an unknown model or version: its one-line error, nothing removed
        return registry.remove(name, version)

    # ---- corpora ------------------------------------------------------------------------------------
    def corpora(self) -> list[Any]:
        from generator.corpora import corpus

        return corpus.list_corpora()

    def corpus_info(self, name: str) -> Any:
        from generator.corpora import corpus

        return corpus.corpus_info(name)

    def add_corpus(self, name: str, paths: list[str], **options: Any) -> Any:
        """Register local text files as a corpus (options: author, lang, encoding, strip_gutenberg, replace)."""
        from generator.corpora import corpus

        return corpus.add_corpus(name, paths, **options)

    def remove_corpus(self, name: str) -> None:
        from generator.corpora import corpus

        corpus.remove_corpus(name)

    def recipes(self) -> list[Any]:
        from generator.corpora import recipes

        return recipes.list_recipes()

    def get_recipe(self, name: str, force: bool = False, log: Callable[[str], None] | None = None) -> Any:
        """Fetch a named corpus from its recipe, verify it and register it."""
        from generator.corpora import fetch

        return fetch.get(name, force=force, log=log)

    # ---- training -----------------------------------------------------------------------------------
    def train(self, config: Any, progress: Callable[[dict], None] | None = None) -> dict:
        """Train (a `generator.TrainConfig`, or a dict of its fields) and publish; returns the card.
        `progress` is called with each progress report."""
        import generator

        if isinstance(config, dict):
            config = generator.TrainConfig(**config)
        return generator.train(config, progress)

    # ---- uploads ------------------------------------------------------------------------------------
    def keep_upload(self, data: bytes, limit: int, folder: str, filename: str) -> Path:
        """Check an uploaded corpus (size, UTF-8, not empty) and keep it under the data directory, in
        uploads/FOLDER/ (written whole: temp file, fsync, rename). Returns where it is."""
        if len(data) > limit:
            raise GhostwriteError(f"That file is {len(data):,} bytes; the limit is {limit:,} bytes.")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise GhostwriteError(f"That file is not UTF-8 text (bad byte at offset {e.start}).") from None
        if "\x00" in text or not text.strip():
            raise GhostwriteError("That file is empty or not plain text.")
        stem = _FOLDER.sub("_", filename.rsplit(".", 1)[0])[:40] or "corpus"
        parts = [_FOLDER.sub("_", p) for p in folder.split("/") if p.strip(".")]
        path = home().joinpath("uploads", *parts, f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}.txt")
        atomic_write_bytes(path, text.replace("\r\n", "\n").encode("utf-8"))
        return path
