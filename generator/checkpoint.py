"""Checkpoints: state dicts and JSON only, written atomically, read with `weights_only=True`.

A checkpoint file is a dict of tensors / state dicts plus one JSON string (`meta`). Writing goes through
a temporary file, fsync and rename, so a run killed at any moment leaves either the previous checkpoint
or the new one, never a torn file. Reading refuses anything that is not plain data: a pickle that would
run code is rejected by torch's weights-only unpickler before it can do anything.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import torch

from .errors import GhostwriteError
from .paths import atomic_write_bytes


def save(path: Path, state: dict, meta: dict) -> None:
    """A write that fails part-way (a full disk) leaves the previous file intact and no temporary file;
    its OSError names the checkpoint."""
    buf = io.BytesIO()
    torch.save({**state, "meta": json.dumps(meta)}, buf)
    try:
        atomic_write_bytes(Path(path), buf.getvalue())
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from e


def load(path: Path, map_location="cpu") -> tuple[dict, dict]:
    """Returns (state, meta). Any unreadable, truncated or unsafe file is one clear GhostwriteError."""
    path = Path(path)
    if not path.exists():
        raise GhostwriteError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GhostwriteError(f"refusing unsafe or corrupt checkpoint {path}: {first[:200]}") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GhostwriteError(f"corrupt or truncated checkpoint {path}: {first[:200]}") from None
    if not isinstance(obj, dict) or "meta" not in obj:
        raise GhostwriteError(f"not a ghostwrite checkpoint: {path}")
    try:
        meta = json.loads(obj.pop("meta"))
    except (TypeError, ValueError):
        raise GhostwriteError(f"corrupt checkpoint metadata: {path}") from None
    return obj, meta


SHAPE_KEYS = ("vocab_size", "emb_size", "hidden_size", "num_layers", "tie_weights")  # what fixes the tensors


def check_model_set(weights: dict, meta: dict, tokenizer, card: dict | None, what: str) -> None:
    """A model is three files that must belong together: the tokenizer, the card and the weights (with
    the config saved beside them). Refuse, in one line, a set whose vocabulary sizes, tokenizer kinds,
    shapes or dtypes disagree: such a model would generate garbage without a word of complaint (two runs
    of one name once published one run's weights with the other's tokenizer)."""
    problem = _disagreement(weights, meta, tokenizer, card or {})
    if problem:
        raise GhostwriteError(f"{what}: its tokenizer, card and weights do not belong together ({problem})")


def _disagreement(weights, meta: dict, tokenizer, card: dict) -> str | None:
    from .model import LSTMLanguageModel, ModelConfig

    cfg = meta.get("model") if isinstance(meta, dict) else None
    if not isinstance(weights, dict) or not weights or not isinstance(cfg, dict):
        return "the checkpoint holds no weights or no model config"
    c_tok = card.get("tokenizer") if isinstance(card.get("tokenizer"), dict) else {}
    c_model = card.get("model") if isinstance(card.get("model"), dict) else {}
    m_tok = meta.get("tokenizer") if isinstance(meta.get("tokenizer"), dict) else {}
    kinds = {"tokenizer": tokenizer.kind, "card": c_tok.get("kind", tokenizer.kind),
             "checkpoint": m_tok.get("kind", tokenizer.kind)}
    if len(set(kinds.values())) > 1:
        return "tokenizer kinds differ: " + ", ".join(f"{k} {v}" for k, v in kinds.items())
    sizes = {"tokenizer": tokenizer.vocab_size, "card": c_tok.get("vocab_size"), "card model": c_model.get("vocab_size"),
             "checkpoint": m_tok.get("vocab_size"), "checkpoint model": cfg.get("vocab_size")}
    for key, label in (("embed.weight", "embedding"), ("head.weight", "output layer")):
        t = weights.get(key)
        if isinstance(t, torch.Tensor) and t.dim() == 2:
            sizes[label] = t.shape[0]
    sizes = {k: v for k, v in sizes.items() if v is not None}
    if len(set(sizes.values())) > 1:
        return "vocabulary sizes differ: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items())
    differ = [k for k in SHAPE_KEYS if k in c_model and k in cfg and c_model[k] != cfg[k]]
    if differ:
        return "the card's model is not the checkpoint's: " + ", ".join(f"{k} {c_model[k]} vs {cfg[k]}" for k in differ)
    try:
        with torch.device("meta"):  # the shapes the config implies, without allocating anything
            expected = LSTMLanguageModel(ModelConfig.from_dict(cfg)).state_dict()
    except (TypeError, ValueError, RuntimeError) as e:
        return f"unusable model config: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or extra:
        return f"tensors missing {missing[:3]}, unexpected {extra[:3]}"
    for key, t in expected.items():
        w = weights[key]
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != tuple(t.shape):
            got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            return f"{key} is {got}, the config says {tuple(t.shape)}"
    dtypes = sorted({str(w.dtype).removeprefix("torch.") for w in weights.values()})
    if len(dtypes) > 1 or not next(iter(weights.values())).dtype.is_floating_point:
        return f"weights in {', '.join(dtypes)}: expected one floating-point dtype"
    return None
