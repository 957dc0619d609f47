"""Shared fixtures: one data directory for the session and tiny models trained once, in seconds.

Tests that need their own empty data directory use `fresh_home`. The real corpora in ../shared/corpora
are used where present; tests that need them skip cleanly when the folder is absent or hidden
(GHOSTWRITE_TEST_SHARED=none). Where they are is decided once, in tests/shared_corpora.py (`SHARED`,
`shared_corpus(name)`, `shared_path(name)`), re-exported here and by the other conftest.py files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from shared_corpora import SHARED, shared_corpus, shared_path  # noqa: F401  (re-exported)
from textgen import synthetic_text

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def session_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("ghostwrite-home")
    old = {k: os.environ.get(k) for k in ("GHOSTWRITE_HOME", "GHOSTWRITE_DATABASE_URL", "GHOSTWRITE_THREADS")}
    os.environ["GHOSTWRITE_HOME"] = str(home)
    os.environ.pop("GHOSTWRITE_DATABASE_URL", None)
    os.environ.setdefault("GHOSTWRITE_THREADS", "1")  # many small tests: one thread each avoids oversubscription
    yield home
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("GHOSTWRITE_HOME", str(home))
    monkeypatch.delenv("GHOSTWRITE_DATABASE_URL", raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_corpus(session_home) -> Path:
    path = session_home / "tiny-corpus.txt"
    path.write_text(synthetic_text(), encoding="utf-8")
    return path


def _train(name: str, corpus: Path, tokenizer: str = "char", steps: int = 40, **kw) -> dict:
    from generator.training.trainer import TrainConfig, train

    cfg = TrainConfig(corpus=str(corpus), name=name, tokenizer=tokenizer, preset="tiny", max_steps=steps,
                      batch_size=8, seq_len=32, lr=1e-2, device="cpu", **kw)
    return train(cfg)


@pytest.fixture(scope="session")
def tiny_model(tiny_corpus) -> dict:
    """A 1×64 char model trained for 40 steps (a few seconds): the model card."""
    return _train("tiny", tiny_corpus)


@pytest.fixture(scope="session")
def tiny_models(tiny_corpus, tiny_model) -> dict[str, dict]:
    """One tiny model per tokenizer: {"char": card, "word": card, "sp": card}."""
    return {"char": tiny_model, "word": _train("tiny-word", tiny_corpus, "word", vocab_size=200),
            "sp": _train("tiny-sp", tiny_corpus, "sp", vocab_size=400)}
