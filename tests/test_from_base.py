"""`train --from MODEL`: fine-tuning never trains on the unknown symbol, and never ignores an option silently.

A char or word base model meeting a corpus with characters it has never seen gains them: the tokenizer
appends them (the base's ids stay), the weights gain rows for them (the base's outputs unchanged, the new
symbols at a low but finite probability), and the card says how many were added. SentencePiece has byte
fallback: an unseen character becomes its UTF-8 byte pieces, never the unknown symbol.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from textgen import synthetic_text

from generator import checkpoint, registry
from generator.errors import GhostwriteError
from generator.model import LSTMLanguageModel, ModelConfig, grow_vocab
from generator.paths import runs_dir
from generator.tokenizers import tokenizer_from_dict
from generator.training.data import read_tokens
from generator.training.trainer import TrainConfig, train

CYRILLIC = str.maketrans("abcdefghiklmnopqrstuvwy", "абцдефгхиклмнопярстуввы")


@pytest.fixture(scope="module")
def foreign_corpus(tmp_path_factory):
    """The synthetic text with its lower-case letters in Cyrillic: most characters unknown to `tiny`."""
    path = tmp_path_factory.mktemp("foreign") / "foreign.txt"
    path.write_text(synthetic_text().translate(CYRILLIC), encoding="utf-8")
    return path


def fine_tune(corpus, base, name, **kw):
    return train(TrainConfig(corpus=str(corpus), name=name, base=base, max_steps=8, batch_size=8, seq_len=32,
                             device="cpu", **kw))


def base_tokenizer(card):
    path = registry.model_dir(card["name"], card["version"]) / "tokenizer.json"
    return tokenizer_from_dict(json.loads(path.read_text(encoding="utf-8")))


def run_tokens(name, vocab):
    return np.asarray(read_tokens(runs_dir() / name / "train.bin", vocab))


@pytest.mark.parametrize("kind", ["char", "word"])
def test_from_grows_the_vocabulary_instead_of_training_on_unk(kind, tiny_models, foreign_corpus):
    base = tiny_models[kind]
    old = base_tokenizer(base)
    text = foreign_corpus.read_text(encoding="utf-8")
    unseen = {c for c in text if not old.decode(old.encode(c)) == c}
    assert len(unseen) >= 15  # the corpus is mostly outside the base's vocabulary
    assert old.encode(text[:20000]).count(old.unk_id) > 5000  # as the base reads it: mostly the unknown symbol

    name = f"ft-foreign-{kind}"
    card = fine_tune(foreign_corpus, base["name"], name)
    tok = base_tokenizer(card)
    assert card["tokenizer"]["vocab_size"] == tok.vocab_size == old.vocab_size + len(unseen)
    assert card["tokenizer"]["added"] == len(unseen) and card["tokenizer"]["base_vocab_size"] == old.vocab_size
    assert card["model"]["vocab_size"] == tok.vocab_size
    assert [tok.decode([i]) for i in range(old.vocab_size)] == [old.decode([i]) for i in range(old.vocab_size)]
    ids = run_tokens(name, tok.vocab_size)
    assert len(ids) > 1000 and not (ids == 0).any()  # not one unknown symbol trained on
    assert tok.decode(tok.encode(text[:5000])) == text[:5000]
    state, meta = checkpoint.load(registry.model_dir(name, card["version"]) / "model.pt")
    assert state["model"]["embed.weight"].shape[0] == tok.vocab_size
    registry.remove(name)


def test_from_grows_the_vocabulary_of_a_streamed_corpus_too(tiny_model, foreign_corpus, monkeypatch):
    monkeypatch.setenv("GHOSTWRITE_STREAM_BYTES", "1000")  # prepared streaming from disk
    card = fine_tune(foreign_corpus, "tiny", "ft-streamed")
    assert card["tokenizer"]["added"] >= 15
    assert json.loads((runs_dir() / "ft-streamed" / "run.json").read_text(encoding="utf-8")).get("streamed")
    assert not (run_tokens("ft-streamed", card["tokenizer"]["vocab_size"]) == 0).any()
    registry.remove("ft-streamed")


def test_from_a_corpus_without_new_characters_adds_nothing(tiny_model, tiny_corpus):
    card = fine_tune(tiny_corpus, "tiny", "ft-same")
    assert card["tokenizer"]["added"] == 0 and card["tokenizer"]["vocab_size"] == tiny_model["tokenizer"]["vocab_size"]
    assert card["model"] == tiny_model["model"]
    registry.remove("ft-same")


def test_from_sentencepiece_uses_byte_pieces_not_unk(tiny_models, foreign_corpus):
    base = tiny_models["sp"]
    card = fine_tune(foreign_corpus, base["name"], "ft-foreign-sp")
    tok = base_tokenizer(card)
    assert card["tokenizer"]["vocab_size"] == base["tokenizer"]["vocab_size"] and card["tokenizer"]["added"] == 0
    ids = run_tokens("ft-foreign-sp", tok.vocab_size)
    assert not (ids == tok.unk_id).any()
    text = foreign_corpus.read_text(encoding="utf-8")[:3000]
    assert tok.decode(tok.encode(text)) == text  # Cyrillic letters as their UTF-8 bytes, exactly
    registry.remove("ft-foreign-sp")


@pytest.mark.parametrize("tied", [True, False])
def test_grown_weights_keep_the_base_outputs_and_start_new_symbols_low(tied):
    torch.manual_seed(0)
    mc = ModelConfig(vocab_size=30, emb_size=16, hidden_size=16 if tied else 24)
    base = LSTMLanguageModel(mc)
    with torch.no_grad():
        base.head.bias.normal_(0.0, 2.0)  # a trained model's biases are far from zero
        base.embed.weight.normal_(0.0, 0.5)
    grown_mc = ModelConfig(**{**mc.to_dict(), "vocab_size": 37})
    grown = LSTMLanguageModel(grown_mc)
    grown.load_state_dict(grow_vocab(base.state_dict(), mc, 37, seed=1))
    assert grown.tied == tied
    x = torch.randint(1, 30, (4, 20))
    with torch.no_grad():
        old_logits, _, _ = base(x)
        new_logits, _, _ = grown(x)
    assert torch.allclose(new_logits[..., :30], old_logits, atol=1e-5)  # the base's symbols score as before
    probs = new_logits.softmax(-1)
    new_p = probs[..., 30:]
    assert torch.isfinite(new_p).all() and (new_p > 0).all()
    assert new_p.sum(-1).mean() < 0.5  # low: the base's symbols keep most of the mass
    assert not torch.equal(grown.embed.weight[30], grown.embed.weight[31])  # noise tells new rows apart
    again = grow_vocab(base.state_dict(), mc, 37, seed=1)
    assert torch.equal(again["embed.weight"], grown.state_dict()["embed.weight"])  # reproducible from the seed


def test_from_with_another_tokenizer_is_refused(tiny_model, tiny_corpus):
    with pytest.raises(GhostwriteError, match="tokenizer"):
        fine_tune(tiny_corpus, "tiny", "ft-word", tokenizer="word")
    with pytest.raises(GhostwriteError, match="vocab"):
        fine_tune(tiny_corpus, "tiny", "ft-vocab", vocab_size=40)
    assert not registry.latest_version("ft-word") and not (runs_dir() / "ft-word").exists()


def test_cli_from_with_another_tokenizer_is_one_line_exit_2(tiny_model, tiny_corpus, session_home):
    env = {**os.environ, "GHOSTWRITE_HOME": str(session_home), "GHOSTWRITE_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "bot.cli", "train", str(tiny_corpus), "--from", "tiny",
                        "--tokenizer", "sp", "--name", "ft-cli", "--max-steps", "5"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "tokenizer" in lines[0] and "Traceback" not in p.stderr
