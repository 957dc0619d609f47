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
    def train(self, config: Any, progress: Callable[[dict], None] | None = None, nproc: int = 1) -> dict:
        """Train (a `generator.TrainConfig`, or a dict of its fields) and publish; returns the card (empty
        on a rank other than 0 under torchrun). `progress` is called with each progress report; `nproc` > 1
        trains on that many processes (DistributedDataParallel)."""
        import generator

        if isinstance(config, dict):
            config = generator.TrainConfig(**config)
        if nproc > 1:
            from generator.training.distributed import launch

            return launch(config, nproc, progress)
        return generator.train(config, progress)

    @staticmethod
    def training_rank() -> int:
        """This process's rank in a torchrun group (0 when not under torchrun)."""
        import os

        from generator.training.distributed import env_world_size

        return int(os.environ.get("RANK", "0") or 0) if env_world_size() > 1 else 0

    @staticmethod
    def model_presets() -> dict[str, dict]:
        """The model sizes `--preset` names (layers, widths)."""
        from generator.model import PRESETS

        return PRESETS

    def evaluate(self, spec: str, text: Path | None = None, corpus: str | None = None, streams: int = 1,
                 device: str = "cpu") -> dict:
        """Score a text file, a registered corpus or (neither) the model's own validation split: bits and nats
        per character, per-token perplexity, chars, tokens, model, text, streams."""
        import numpy as np

        from generator.device import configure_cpu, pick
        from generator.generation.loaded import load
        from generator.training.evaluate import chars_scored, report, score_tokens
        from generator.training.runs import eval_text_for

        dev = pick(device)
        if dev.type == "cpu":
            configure_cpu()
        lm = load(spec, device=str(dev), quantize=False)
        body, label = eval_text_for(lm, text, corpus)
        tokens = np.asarray(lm.tokenizer.encode(body), dtype=np.int64)
        if len(tokens) < 2:
            raise GhostwriteError("text too short to score (needs at least two tokens)")
        nats, n = score_tokens(lm.model, tokens, streams=streams, seq_len=256, device=dev)
        figures = report(nats, n, chars_scored(len(body), len(tokens), n))
        figures.update(model=lm.spec, text=label, streams=streams)
        return figures

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
