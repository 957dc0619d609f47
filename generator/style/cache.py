"""Where judges and originality indexes live: built once per corpus TRAINING split and kept with the corpus.

A registered corpus keeps them in `<home>/corpora/NAME/style/` (the folder is replaced whole when the
corpus's text changes, so they go with it); a corpus read from a path keeps them in
`<home>/cache/style/SHA/`. Each file's name holds the corpus's sha256 (its content hash, corpus.py), the
validation fraction of the split and the file's format, so a changed corpus, another split or a newer
format is rebuilt, never served stale. Files are written atomically; a damaged one is rebuilt. A process
keeps the few it used last in memory.
"""

from __future__ import annotations

import logging
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ..corpora.corpus import Corpus, split_text
from ..paths import corpora_dir, home
from . import judges, originality

log = logging.getLogger("ghostwrite.style")
DEFAULT_VAL_FRACTION = 0.1  # the trainer's default split (TrainConfig.val_fraction)
_MEMORY: OrderedDict[str, Any] = OrderedDict()
_KEEP = 16
_lock = threading.Lock()


def style_dir(corpus: Corpus) -> Path:
    registered = corpora_dir() / corpus.name
    if corpus.path is not None and Path(corpus.path).parent == registered:
        return registered / "style"
    return home() / "cache" / "style" / corpus.sha256[:16]


def _key(corpus: Corpus, kind: str, fmt: int, val_fraction: float, extra: str = "") -> Path:
    return style_dir(corpus) / f"{kind}{extra}-f{fmt}-{corpus.sha256[:16]}-val{val_fraction:g}.npz"


def training_split(corpus: Corpus, val_fraction: float = DEFAULT_VAL_FRACTION) -> str:
    """The corpus's training split: the trainer's own (corpus.split_text)."""
    return split_text(corpus.text, val_fraction)[0]


def _cached(path: Path, load, build):
    key = str(path)
    with _lock:
        if key in _MEMORY:
            _MEMORY.move_to_end(key)
            return _MEMORY[key]
    obj = None
    if path.is_file():
        try:
            obj = load(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # damaged, another format: rebuilt
            log.warning("rebuilding %s: %s", path, e)
    if obj is None:
        obj = build()
        try:
            obj.save(path)
        except OSError as e:  # a read-only data folder: still usable, just not kept
            log.warning("could not keep %s: %s", path, e)
    with _lock:
        _MEMORY[key] = obj
        while len(_MEMORY) > _KEEP:
            _MEMORY.popitem(last=False)
    return obj


def judge_for(corpus: Corpus, val_fraction: float = DEFAULT_VAL_FRACTION,
              order: int = judges.ORDER) -> judges.Judge:
    """The corpus's judge, trained on its training split (cached)."""

    def load(p: Path) -> judges.Judge:
        j = judges.Judge.load(p)
        if j.meta.get("format") != judges.FORMAT or j.meta.get("sha256") != corpus.sha256:
            raise ValueError("stale judge")
        return j

    def build() -> judges.Judge:
        return judges.build_judge(training_split(corpus, val_fraction), order,
                                  meta={"corpus": corpus.name, "sha256": corpus.sha256, "val_fraction": val_fraction})

    return _cached(_key(corpus, "judge", judges.FORMAT, val_fraction, f"-o{order}"), load, build)


def index_for(corpus: Corpus, val_fraction: float = DEFAULT_VAL_FRACTION) -> originality.Index:
    """The originality index (a suffix array) over the corpus's training split (cached)."""
    return _cached(_key(corpus, "suffix", originality.FORMAT, val_fraction), originality.Index.load,
                   lambda: originality.Index.build(training_split(corpus, val_fraction)))


def forget_memory() -> None:
    """Drop what this process keeps in memory (tests)."""
    with _lock:
        _MEMORY.clear()
